-- error: 9:7: Error during planning: Cannot create filter with non-boolean predicate 'events.value + Int64(1)' returning Float64
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*)
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
WHERE value + 1
GROUP BY id, window_start, window_end;
