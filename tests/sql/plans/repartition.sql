-- A query spread over processes (checkpoint in Kafka) that groups by something other than
-- the topic's key: a shuffle stage sends every record through the topic
-- `buckets-repartition`, keyed by its bucket, to the task aggregating that bucket.
SET name = 'buckets';
SET checkpoint.store = 'kafka';

CREATE SOURCE events (
  id BIGINT NOT NULL,
  value DOUBLE NOT NULL,
  timestamp TIMESTAMP NOT NULL,
  WATERMARK FOR timestamp AS timestamp - INTERVAL '5' SECOND
) WITH (
  connector = 'kafka',
  topic = 'events',
  brokers = '127.0.0.1:9092',
  format = 'json'
);

CREATE SINK totals WITH (connector = 'kafka', topic = 'totals');

INSERT INTO totals
SELECT id % 4 AS bucket, window_start, window_end, count(*) AS count, max(value) AS max_value
FROM TUMBLE(events, timestamp, INTERVAL '10' SECOND)
WHERE value >= 0
GROUP BY id % 4, window_start, window_end;
