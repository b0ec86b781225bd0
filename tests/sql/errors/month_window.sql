-- error: 8:34: expected a fixed-length interval such as INTERVAL '10' SECOND, got `INTERVAL '1' MONTH` (months and years have no fixed length)
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*)
FROM TUMBLE(events, ts, INTERVAL '1' MONTH)
GROUP BY id, window_start, window_end;
