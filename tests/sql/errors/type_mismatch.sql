-- error: 9:7: invalid pipeline definition: filter: `name > 5 + 'abc'`: Error during planning: Cannot coerce arithmetic expression Int64 + Utf8 to valid types
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*)
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
WHERE name > 5 + 'abc'
GROUP BY id, window_start, window_end;
