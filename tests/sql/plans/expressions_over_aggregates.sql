-- error: 7:38: `count(*) + 1`: a SELECT item must be a GROUP BY key, window_start/window_end or an aggregate (count, sum, avg, min, max, stddev, approx_percentile_cont); expressions over aggregates are not supported yet
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP, other TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*) + 1 AS n
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
