-- error: 4:49: invalid pipeline definition: filter: `CAST(id AS VARCHAR) = 1.5 AND ts IS NOT NULL AND id + 'x' > 0`: Error during planning: Cannot coerce arithmetic expression Int64 + Utf8 to valid types
CREATE SOURCE events (id BIGINT, ts TIMESTAMP) WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out SELECT * FROM events WHERE CAST(id AS VARCHAR) = 1.5 AND ts IS NOT NULL AND id + 'x' > 0;
