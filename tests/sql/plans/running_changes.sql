-- A running (non-windowed) aggregation: allowed with EMIT CHANGES.
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP)
WITH (connector = 'kafka', topic = 'events', scan.startup.mode = 'timestamp',
      scan.startup.timestamp-millis = '1767225600000', client = 'librdkafka');
CREATE SINK totals WITH (connector = 'kafka', topic = 'totals', brokers = '127.0.0.1:9093');
SET trigger = 'on-arrival';
INSERT INTO totals
SELECT id AS k, count(*) AS n, approx_percentile_cont(value, 0.9) AS p90
FROM events
GROUP BY id
EMIT CHANGES;
