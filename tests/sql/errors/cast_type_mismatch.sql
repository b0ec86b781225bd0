-- error: 4:49: invalid pipeline definition: filter: `CAST(id AS VARCHAR) = 1.5 AND ts IS NOT NULL AND id + 'x' > 0`: cannot compare VARCHAR and DOUBLE
CREATE SOURCE events (id BIGINT, ts TIMESTAMP) WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out SELECT * FROM events WHERE CAST(id AS VARCHAR) = 1.5 AND ts IS NOT NULL AND id + 'x' > 0;
