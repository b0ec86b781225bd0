-- error: 7:42: Schema error: No field named vale. Did you mean 'events.value'? Valid fields are events.id, events.value, events.name, events.ts, events.window_start, events.window_end.
CREATE SOURCE events (id BIGINT, value DOUBLE, name VARCHAR, ts TIMESTAMP,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
WITH (connector = 'kafka', topic = 'events');
CREATE SINK out WITH (connector = 'console');
INSERT INTO out
SELECT id, window_start, window_end, avg(vale)
FROM TUMBLE(events, ts, INTERVAL '10' SECOND)
GROUP BY id, window_start, window_end;
