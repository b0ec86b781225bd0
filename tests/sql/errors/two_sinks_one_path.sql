-- error: 12:1: branch `b`: file sink path ./out is already written by another sink of the job
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK a WITH (connector = 'file', path = './out');
CREATE SINK b WITH (connector = 'file', path = './out');
INSERT INTO a
SELECT id, window_start, window_end, count(*)
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;

INSERT INTO b
SELECT id, window_start, window_end, max(value)
FROM HOP(events, ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
