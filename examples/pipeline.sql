-- The default Rivulet query (examples/pipeline.toml) in streaming SQL: per id, 10-second
-- tumbling windows with count, avg, min and max of `value`, 5 s allowed lateness, update mode.
--
--   rivulet gen --topic events --rate 1000 --keys 10 &
--   rivulet run --sql examples/pipeline.sql
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
  brokers = '127.0.0.1:9092',
  format = 'json',
  scan.startup.mode = 'earliest',
  -- `rivulet gen` keys by id: spread over processes, each task groups what it reads.
  key.fields = 'id'
);

CREATE SINK stats WITH (connector = 'console');

INSERT INTO stats
SELECT id, window_start, window_end, count(*) AS count,
       avg(value) AS avg_value, min(value) AS min_value, max(value) AS max_value
FROM TUMBLE(events, timestamp, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end
EMIT CHANGES;
