-- The query of the compose file's `processor` service: the default query (examples/pipeline.sql)
-- with its results both as tables in the log (`docker compose logs -f processor`) and, once per
-- closed window, as JSON records in the Kafka topic `stats` (for other consumers and tests).
-- The source's brokers come from the processor's --brokers flag.
SET name = 'stats';
SET trigger = '1s';

CREATE SOURCE events (
  id BIGINT NOT NULL,
  value DOUBLE NOT NULL,
  timestamp TIMESTAMP NOT NULL,
  WATERMARK FOR timestamp AS timestamp - INTERVAL '5' SECOND
) WITH (
  connector = 'kafka',
  topic = 'events',
  brokers = 'broker:9092',
  format = 'json',
  scan.startup.mode = 'earliest',
  -- `rivulet gen` keys by id: spread over processes, each task groups what it reads.
  key.fields = 'id'
);

CREATE SINK stats_table WITH (connector = 'console');
CREATE SINK stats_topic WITH (connector = 'kafka', topic = 'stats');

INSERT INTO stats_table
SELECT id, window_start, window_end, count(*) AS count,
       avg(value) AS avg_value, min(value) AS min_value, max(value) AS max_value
FROM TUMBLE(events, timestamp, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end
EMIT CHANGES;

INSERT INTO stats_topic
SELECT id, window_start, window_end, count(*) AS count,
       avg(value) AS avg_value, min(value) AS min_value, max(value) AS max_value
FROM TUMBLE(events, timestamp, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end
EMIT ON WINDOW CLOSE;
