-- error: 7:6: a window over source `events` needs a watermark: declare WATERMARK FOR <column> AS <column> - INTERVAL '<n>' SECOND in CREATE SOURCE events
CREATE SOURCE events (id BIGINT, ts TIMESTAMP)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*)
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
