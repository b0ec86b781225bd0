-- No aggregation: each row that passes WHERE is projected through DataFusion functions and
-- sent on as it arrives.
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK alerts WITH (connector = 'kafka', topic = 'alerts');
INSERT INTO alerts
SELECT id, upper(name) AS who, value * 1.8 + 32 AS fahrenheit,
       date_trunc('minute', ts) AS minute, sqrt(abs(value))
FROM events
WHERE value > 90 AND starts_with(lower(name), 'a');
