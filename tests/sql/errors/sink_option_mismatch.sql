-- error: 3:44: unknown option `path`, expected one of `topic`, `brokers`, `properties.<name>`, `format`
CREATE SOURCE events (id BIGINT, ts TIMESTAMP) WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'kafka', path = '/tmp/x');
INSERT INTO out SELECT * FROM events;
