-- Two results from one read of `events`: per-id tumbling statistics into a file, and a
-- filtered hopping maximum per derived bucket into Kafka. The source is read and decoded
-- once; each INSERT is a branch with its own operators, state and sinks.
SET name = 'fanout';
SET trigger = '2s';

CREATE SOURCE events (id BIGINT NOT NULL, value DOUBLE, ts TIMESTAMP NOT NULL,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events', brokers = '127.0.0.1:9092', format = 'json');

CREATE SINK per_id WITH (connector = 'file', path = './out/per_id');
CREATE SINK high_buckets WITH (connector = 'kafka', topic = 'high_buckets');

INSERT INTO per_id
SELECT id, window_start, window_end, count(*) AS n, avg(value) AS avg_value
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;

INSERT INTO high_buckets
SELECT id % 3 AS bucket, window_start, window_end, max(value) AS max_value
FROM HOP(events, ts, INTERVAL '5' SECOND, INTERVAL '20' SECOND)
WHERE value > 50
GROUP BY id % 3, window_start, window_end
EMIT CHANGES;
