-- error: 6:61: EMIT ON WINDOW CLOSE needs a window: read the source through TUMBLE, HOP or SESSION, or use EMIT CHANGES
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP, other TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out SELECT id, count(*) FROM events GROUP BY id EMIT ON WINDOW CLOSE;
