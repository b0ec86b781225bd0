-- PENDING (several INSERTs per file are being built): two queries share the source; each
-- sink's rows are in two_inserts.expected.<sink>.jsonl (the harness must learn to read one
-- expected file per sink when this lands).
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
