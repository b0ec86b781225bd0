-- Expressions over aggregates: a mean computed from sum and count, and the spread of each window.
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, sum(value) / count(*) AS mean, max(value) - min(value) AS spread
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
