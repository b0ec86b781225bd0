-- The example in README.md (Streaming SQL).
CREATE SOURCE events (id BIGINT, value DOUBLE, timestamp TIMESTAMP,
  WATERMARK FOR timestamp AS timestamp - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events', brokers = '127.0.0.1:9092', format = 'json',
      scan.startup.mode = 'earliest');
CREATE SINK stats WITH (connector = 'kafka', topic = 'stats', format = 'json');
INSERT INTO stats
SELECT id, window_start, window_end, count(*) AS n, avg(value), min(value), max(value)
FROM TUMBLE(events, timestamp, INTERVAL '10' SECOND)
WHERE value > 0
GROUP BY id, window_start, window_end
EMIT ON WINDOW CLOSE;
