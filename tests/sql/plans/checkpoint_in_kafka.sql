-- A query whose checkpoint lives in Kafka: offsets, state and epoch markers in the compacted
-- topic `scaled-changelog`, written through Kafka transactions; results to a Kafka topic.
-- The topic is keyed by id (`key.fields`), so each task groups what it reads.
SET name = 'scaled';
SET checkpoint.store = 'kafka';

CREATE SOURCE events (
  id BIGINT NOT NULL,
  value DOUBLE NOT NULL,
  timestamp TIMESTAMP NOT NULL,
  WATERMARK FOR timestamp AS timestamp - INTERVAL '5' SECOND
) WITH (
  connector = 'kafka',
  topic = 'events',
  'key.fields' = 'id',
  brokers = '127.0.0.1:9092',
  format = 'json'
);

CREATE SINK totals WITH (connector = 'kafka', topic = 'totals');

INSERT INTO totals
SELECT id, window_start, window_end, count(*) AS count, max(value) AS max_value
FROM TUMBLE(events, timestamp, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
