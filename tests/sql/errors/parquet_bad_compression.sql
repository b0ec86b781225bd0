-- error: 5:62: option `compression`: `brotli` is not valid; expected one of `zstd`, `snappy`, `uncompressed`, `none`
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'parquet', path = './out', compression = 'brotli');
INSERT INTO out
SELECT id, window_start, window_end, count(*) AS n
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
