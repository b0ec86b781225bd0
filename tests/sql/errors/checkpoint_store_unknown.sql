-- error: 2:5: checkpoint.store: unknown checkpoint store `zookeeper`: expected `dir` or `kafka`
SET checkpoint.store = 'zookeeper';
CREATE SOURCE events (id BIGINT, ts TIMESTAMP)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out SELECT * FROM events;
