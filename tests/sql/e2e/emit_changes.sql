-- EMIT CHANGES: every micro-batch (one record each here) emits the rows it changed, so a
-- window's row is repeated with its running values. The record at 00:08 comes after the
-- watermark reached 00:11 (its window is gone) and changes nothing. Same input as
-- emit_on_window_close.
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*) AS n, sum(value) AS total
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end
EMIT CHANGES;
