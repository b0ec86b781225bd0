-- Hopping windows, a WHERE clause with functions, CASE and NULL handling, kafka sink.
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = 'events', format = 'json',
      scan.startup.mode = 'latest', late.topic = 'events.late');
CREATE SINK hopped WITH (connector = 'kafka', topic = 'hopped', format = 'json');
INSERT INTO hopped
SELECT id, window_start, window_end, count(value) AS n, sum(abs(value)) AS total
FROM HOP(events, ts, INTERVAL '5' SECOND, INTERVAL '1' MINUTE)
WHERE value IS NOT NULL AND upper(coalesce(name, 'x')) <> 'SKIP'
  AND CASE WHEN id % 2 = 0 THEN value > 0 ELSE value < 100 END
GROUP BY id, window_start, window_end;
