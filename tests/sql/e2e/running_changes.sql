-- A non-windowed aggregation needs EMIT CHANGES: each record updates its id's running
-- count and maximum. Event times only increase, so nothing is late (no WATERMARK: lateness 0).
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, count(*) AS n, max(value) AS hi
FROM events
GROUP BY id
EMIT CHANGES;
