-- No aggregation: the records that pass WHERE go out as they are, with the source's columns
-- (a missing nullable field is null). value > 10 is NULL, so not true, when value is null.
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT * FROM events
WHERE value > 10 AND upper(coalesce(name, 'x')) <> 'SKIP';
