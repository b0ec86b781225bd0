-- WHERE with functions: lower, abs, round (half away from zero: 4.5 rounds to 5), IN, % and
-- CASE. A record without `name` makes lower(name) NULL, so it does not pass. A record that
-- does not pass still moves the watermark (the last one closes the 00:20 window).
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*) AS n, sum(value) AS total
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
WHERE lower(name) IN ('a', 'b') AND abs(value) >= 2 AND round(value) <> 5
  AND CASE WHEN id % 2 = 0 THEN value > 0 ELSE true END
GROUP BY id, window_start, window_end;
