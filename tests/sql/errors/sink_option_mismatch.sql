-- error: 3:44: option `path` does not apply to a kafka sink
CREATE SOURCE events (id BIGINT, ts TIMESTAMP) WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'kafka', path = '/tmp/x');
INSERT INTO out SELECT * FROM events;
