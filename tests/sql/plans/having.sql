-- error: 10:8: HAVING is not supported yet (the window operator has no post-aggregation filter)
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*)
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end
HAVING count(*) > 1;
