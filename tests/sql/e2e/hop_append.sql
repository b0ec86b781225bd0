-- Hopping windows: 10 s long, every 5 s, so each record counts in two windows. The record
-- at 00:21 arrives when the watermark is exactly 00:21: on time (late means strictly behind).
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*) AS n, sum(value) AS total
FROM HOP(events, ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
