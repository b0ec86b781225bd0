-- A derived group key: id % 10 (truncating, so -3 % 10 is -3), named by its alias.
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id % 10 AS bucket, window_start, window_end, count(*) AS n, max(value) AS hi
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id % 10, window_start, window_end;
