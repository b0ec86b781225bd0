-- error: 3:46: unknown source option `scan.startup.mod` (connector, topic, brokers, format, scan.startup.mode, scan.startup.timestamp-millis, group.id, max.records.per.trigger, dlq.topic, late.topic, client, timestamp.format, idle.timeout)
CREATE SOURCE events (id BIGINT, ts TIMESTAMP)
WITH (connector = 'kafka', topic = 'events', scan.startup.mod = 'earliest');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out SELECT * FROM events;
