-- error: 6:13: unknown sink `nowhere`: declare it with CREATE SINK nowhere WITH (...)
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO nowhere
SELECT id, count(*) FROM events GROUP BY id EMIT CHANGES;
