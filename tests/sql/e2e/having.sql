-- HAVING: only windows with at least two records are emitted.
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*) AS n
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end
HAVING count(*) >= 2;
