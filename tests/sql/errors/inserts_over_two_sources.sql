-- error: 15:1: this INSERT reads source `clicks`, the first one reads `events`: the INSERTs of a file share one source (read once)
CREATE SOURCE events (id BIGINT, value DOUBLE, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SOURCE clicks (id BIGINT, ts TIMESTAMP)
WITH (connector = 'kafka', topic = 'clicks');
CREATE SINK a WITH (connector = 'console');
CREATE SINK b WITH (connector = 'console');
INSERT INTO a
SELECT id, window_start, window_end, count(*)
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end
EMIT CHANGES;

INSERT INTO b SELECT * FROM clicks;
