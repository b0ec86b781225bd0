-- Casts: DOUBLE to BIGINT truncates toward zero (2.7 -> 2, -1.5 -> -1) and makes the group
-- key; a VARCHAR that is not a number casts to NULL, which sum() skips (a sum of BIGINTs is a
-- BIGINT); CAST(id AS DOUBLE) / 2 divides as DOUBLE (id 3 passes: 1.5 > 1.0; id 2 does not).
CREATE SOURCE events (id BIGINT, value DOUBLE, code VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT CAST(value AS BIGINT) AS whole, window_start, window_end,
       count(*) AS n, sum(CAST(code AS BIGINT)) AS codes
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
WHERE CAST(id AS DOUBLE) / 2 > 1.0
GROUP BY CAST(value AS BIGINT), window_start, window_end;
