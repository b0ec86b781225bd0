-- error: 6:1: a non-windowed aggregation over the unbounded source `events` never finishes: add EMIT CHANGES to emit updated rows, or aggregate over a window (TUMBLE, HOP, SESSION)
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, count(*) AS n
FROM events
GROUP BY id;
