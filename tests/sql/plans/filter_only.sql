-- No aggregation: the rows that pass WHERE go to the sink as they arrive.
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK big WITH (connector = 'console');
INSERT INTO big SELECT * FROM events WHERE value > 90.5 AND id IN (1, 2, 3);
