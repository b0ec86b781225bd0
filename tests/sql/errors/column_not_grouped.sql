-- error: 7:12: Error during planning: Column in SELECT must be in GROUP BY or an aggregate function: While expanding wildcard, column "events.value" must appear in the GROUP BY clause or must be part of an aggregate function, currently only "events.id, events.window_start, events.window_end, count(Int64(1))" appears in the SELECT clause satisfies this requirement
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP, other TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, value, count(*)
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
