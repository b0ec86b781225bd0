-- error: 8:21: the window's time column must be the watermark column `ts`, not `other`
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP, other TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*)
FROM TUMBLE(events, other, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
