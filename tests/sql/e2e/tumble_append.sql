-- Tumbling 10 s windows per id, EMIT ON WINDOW CLOSE (the default), 2 s of lateness.
-- The record at 00:08 arrives after the watermark reached 00:10 and is dropped; the last one
-- (00:40) moves the watermark to 00:38 so the 00:20 window closes; its own window stays open.
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*) AS n, sum(value) AS total,
       min(value) AS lo, max(value) AS hi, avg(value) AS mean
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
