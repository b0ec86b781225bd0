-- NULL handling: missing and null fields of nullable columns. count(*) counts rows,
-- count(value) and count(name) non-null values; sum skips NULLs and is NULL when every input is; a
-- NULL key is a group of its own (sorted first); coalesce() in WHERE. The malformed record is a
-- dead letter and changes nothing.
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*) AS n, count(value) AS n_value,
       sum(value) AS total, count(name) AS n_name
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
WHERE coalesce(name, 'none') <> 'skip'
GROUP BY id, window_start, window_end;
