-- EMIT ON WINDOW CLOSE: one final row per window once the watermark passes its end. Same
-- input as emit_changes: the watermark ends at 00:12, so the 00:10 windows are never final
-- and never emitted.
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*) AS n, sum(value) AS total
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end
EMIT ON WINDOW CLOSE;
