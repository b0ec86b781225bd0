-- Two INSERTs share the source (read once); each sink has its own expected file.
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK counts WITH (connector = 'console');
CREATE SINK big WITH (connector = 'console');
INSERT INTO counts
SELECT id, window_start, window_end, count(*) AS n
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
INSERT INTO big
SELECT id, window_start, window_end, max(value) AS hi
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
WHERE value > 10
GROUP BY id, window_start, window_end;
