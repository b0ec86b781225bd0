-- error: 7:1: Error during planning: HAVING clause references: events.value > Int64(1) must appear in the GROUP BY clause or be used in an aggregate function
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, value FROM events
HAVING value > 1;
