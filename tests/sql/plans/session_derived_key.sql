-- Session windows grouped by a derived key and a cast, emitted when each session closes.
CREATE SOURCE clicks (user_id BIGINT, amount INT, at BIGINT NOT NULL,
  WATERMARK FOR at AS at - INTERVAL '1' SECOND)
WITH (connector = 'kafka', topic = 'clicks', timestamp.format = 'epoch_millis',
      idle.timeout = '10s', group.id = 'sessions', max.records.per.trigger = 5000);
CREATE SINK sessions WITH (connector = 'file', path = 'out/sessions.jsonl');
SET checkpoint.dir = 'ckpt/sessions';
INSERT INTO sessions
SELECT user_id % 10 AS bucket, window_start, window_end,
       count(*) AS clicks, max(CAST(amount AS DOUBLE)) AS biggest,
       stddev(amount) AS spread
FROM SESSION(clicks, at, INTERVAL '30' SECOND)
GROUP BY user_id % 10, window_start, window_end
EMIT ON WINDOW CLOSE;
