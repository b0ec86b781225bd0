-- Expressions over aggregates and over a derived key, CASE, casts and DataFusion functions in
-- the SELECT list; results upserted into PostgreSQL.
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK stats WITH (connector = 'postgres', url = 'postgres://rivulet@127.0.0.1:5432/analytics',
  table = 'bucket_stats');
INSERT INTO stats
SELECT id % 10 AS bucket, window_start, window_end,
       count(*) + 1 AS n_plus_one,
       round(sum(value) / count(*), 2) AS mean,
       CASE WHEN max(value) > 90 THEN 'hot' ELSE 'normal' END AS level,
       CAST(max(value) - min(value) AS BIGINT) AS spread,
       concat('bucket-', id % 10) AS label
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
WHERE value IS NOT NULL
GROUP BY id % 10, window_start, window_end;
