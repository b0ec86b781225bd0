-- HAVING over aggregates: one the SELECT list also computes (reused), one computed only for
-- HAVING (hidden); the result keeps the SELECT order. Results go to Parquet files.
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'parquet', path = './results', compression = 'snappy',
  roll_interval = '30s');
INSERT INTO out
SELECT window_start, id, count(*) AS n, window_end
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end
HAVING count(*) > 1 AND min(value) >= 0;
