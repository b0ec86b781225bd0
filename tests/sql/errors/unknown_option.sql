-- error: 3:46: unknown option `scan.startup.mod` (did you mean "scan.startup.mode"?), expected one of `group_id`, `brokers`, `properties.<name>`, `topics`, `starting_offsets`, `scan.startup.mode`, `scan.startup.timestamp-millis`, `max_records_per_trigger`, `dlq_topic`, `late_topic`, `key_fields`, `client`, `format`
CREATE SOURCE events (id BIGINT, ts TIMESTAMP)
WITH (connector = 'kafka', topic = 'events', scan.startup.mod = 'earliest');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out SELECT * FROM events;
