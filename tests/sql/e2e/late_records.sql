-- Late records: a record is late when its event time is behind the watermark in force
-- for its micro-batch (max event time seen before it, minus 3 s), even if its window is
-- still open (00:02 after 00:06); one exactly at the watermark (00:03) is on time. Late
-- records are left out of the results and written to the late topic (NAME.late.jsonl).
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '3' SECOND)
WITH (connector = 'kafka', topic = '${TOPIC}', brokers = '${BROKERS}', format = 'json');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, count(*) AS n, sum(value) AS total
FROM TUMBLE(events, ts, INTERVAL '5' SECOND)
GROUP BY id, window_start, window_end;
