-- Session windows with a 5 s gap per id: [first event, last event + gap). id 2's events at
-- 00:11 and 00:16 are exactly one gap apart, so they are two sessions; the event at 00:27
-- comes after the watermark reached 00:28 and is dropped.
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*) AS n, max(value) AS hi
FROM SESSION(events, ts, INTERVAL '5' SECOND)
GROUP BY id, window_start, window_end;
