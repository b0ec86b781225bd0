// Rivulet dashboard: listens to /api/events (Server-Sent Events, one snapshot a second) and
// redraws. No framework and no build step; charts are SVG drawn here. Values shown are also
// kept in data-* attributes (raw numbers), so tests can compare the page with /api.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG_NS = 'http://www.w3.org/2000/svg';
  // Mid-tone colours, readable on both the light and the dark background.
  const PALETTE = ['#3b82f6', '#ef4444', '#22c55e', '#f59e0b', '#a855f7', '#06b6d4',
    '#ec4899', '#84cc16', '#f97316', '#64748b', '#14b8a6', '#eab308'];
  const RATE_SERIES = [
    ['generator', 'generator out', '#a855f7'],
    ['broker_in', 'broker in', '#f59e0b'],
    ['engine_in', 'engine in', '#3b82f6'],
    ['engine_out', 'engine out (results)', '#22c55e'],
  ];
  const MAX_RATES = 300;
  const TOP = 10;
  const STALE_MS = 5000;

  const state = {
    selected: null, // null: top-N by count; else explicit key list
    hidden: new Set(), // keys hidden through the legend
    serverId: null,
    rates: [],
    last: null,
    es: null,
    lastMessage: 0,
    lastConnect: 0,
  };

  // ---- helpers ------------------------------------------------------------------------
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }
  function pad2(n) { return String(n).padStart(2, '0'); }
  function clock(ms) {
    const d = new Date(ms);
    return pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }
  function num(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    if (Math.abs(v) >= 1000) return v.toLocaleString('en-US', { maximumFractionDigits: 1 });
    return v.toFixed(digits === undefined ? 3 : digits);
  }
  // A value cell: counts as integers, other numbers with 3 decimals.
  function cellText(v, isCount) {
    if (v === null || v === undefined) return '–';
    if (typeof v !== 'number') return String(v);
    return isCount && Number.isInteger(v) ? String(v) : v.toFixed(3);
  }
  function isCountColumn(name) {
    const q = state.last && state.last.query;
    const a = q && q.aggregates.find((x) => x.name === name);
    return a ? a.function === 'count' : name === 'count';
  }
  function rate(v) { return v === null || v === undefined ? '–' : num(Math.round(v)); }
  function bytes(b) {
    if (b === null || b === undefined) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i === 0 ? b : b.toFixed(1)) + ' ' + u[i];
  }
  function secs(s) {
    if (s === null || s === undefined) return '–';
    if (s < 90) return s.toFixed(1) + ' s';
    if (s < 5400) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }
  function naturalCmp(a, b) {
    const x = Number(a), y = Number(b);
    const nx = a !== '' && !Number.isNaN(x), ny = b !== '' && !Number.isNaN(y);
    if (nx && ny) return x - y || (a < b ? -1 : a > b ? 1 : 0);
    if (nx) return -1;
    if (ny) return 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function setText(id, text) { const e = $(id); if (e && e.textContent !== text) e.textContent = text; }
  function level(id, lvl) { const e = $(id); if (e) e.closest('.card').setAttribute('data-level', lvl || ''); }

  // ---- theme --------------------------------------------------------------------------
  const THEMES = ['auto', 'light', 'dark'];
  function applyTheme(t) {
    document.documentElement.setAttribute('data-theme', t);
    $('theme').title = 'Theme: ' + t + ' (click to change)';
  }
  function initTheme() {
    const fromUrl = new URLSearchParams(location.search).get('theme');
    let t = THEMES.includes(fromUrl) ? fromUrl : null;
    if (!t) { try { t = localStorage.getItem('rivulet-theme'); } catch (e) { t = null; } }
    applyTheme(THEMES.includes(t) ? t : 'auto');
    $('theme').addEventListener('click', () => {
      const cur = document.documentElement.getAttribute('data-theme');
      const next = THEMES[(THEMES.indexOf(cur) + 1) % THEMES.length];
      applyTheme(next);
      try { localStorage.setItem('rivulet-theme', next); } catch (e) { /* private mode */ }
    });
  }

  // ---- connection ---------------------------------------------------------------------
  function setConn(s, text) {
    const c = $('conn');
    c.setAttribute('data-state', s);
    c.textContent = text;
    document.body.setAttribute('data-connected', s === 'live' ? 'true' : 'false');
  }
  function connect() {
    if (state.es) state.es.close();
    state.lastConnect = Date.now();
    const p = new URLSearchParams();
    if (state.selected) p.set('keys', state.selected.join(','));
    p.set('top', String(TOP));
    p.set('windows', '30');
    const es = new EventSource('/api/events?' + p.toString());
    state.es = es;
    setConn('connecting', 'connecting…');
    es.addEventListener('snapshot', (ev) => {
      if (state.es !== es) return;
      state.lastMessage = Date.now();
      let snap;
      try { snap = JSON.parse(ev.data); } catch (e) { return; }
      setConn('live', 'live');
      onSnapshot(snap);
    });
    es.onerror = () => {
      if (state.es !== es) return;
      setConn('lost', 'reconnecting…');
      // The browser retries by itself while the stream is only broken; a refused or failed
      // request closes it for good, so start over.
      if (es.readyState === EventSource.CLOSED) setTimeout(() => { if (state.es === es) connect(); }, 1000);
    };
  }
  // A stream that silently stops (no error, no data) is replaced too.
  setInterval(() => {
    const now = Date.now();
    if (now - state.lastMessage > STALE_MS && now - state.lastConnect > STALE_MS) {
      if (state.lastMessage) setConn('lost', 'reconnecting…');
      connect();
    }
  }, 1000);

  // ---- snapshot -----------------------------------------------------------------------
  function onSnapshot(snap) {
    const h = snap.health;
    if (h.server_id !== state.serverId) {
      // A restart: forget the old process's series.
      state.serverId = h.server_id;
      state.rates = [];
      document.body.setAttribute('data-server', h.server_id);
    }
    if (snap.rates.length > 1 || state.rates.length === 0) {
      state.rates = snap.rates.slice(-MAX_RATES);
    } else {
      for (const r of snap.rates) {
        const last = state.rates[state.rates.length - 1];
        if (!last || r.t_ms > last.t_ms) state.rates.push(r);
      }
      if (state.rates.length > MAX_RATES) state.rates.splice(0, state.rates.length - MAX_RATES);
    }
    state.last = snap;
    renderHeader(snap);
    renderCards(h);
    renderResults(snap.results);
    renderRates();
    renderLag(h.engine);
    renderInstance(h.instance);
    renderTopics(snap.cluster);
    renderGroups(snap.cluster);
    const foot = $('last-update');
    const epoch = h.engine && h.engine.last_epoch !== null ? h.engine.last_epoch : '';
    foot.setAttribute('data-epoch', String(epoch));
    foot.setAttribute('data-ts', String(h.now_ms));
    foot.textContent = 'Updated ' + clock(h.now_ms) + (epoch !== '' ? ' · epoch ' + epoch : '');
  }

  function renderHeader(snap) {
    const h = snap.health;
    const b = $('status');
    b.setAttribute('data-status', h.status);
    b.textContent = h.status;
    const r = $('reasons');
    r.replaceChildren(...h.reasons.map((x) => el('li', null, x)));
    r.hidden = h.reasons.length === 0;
    r.setAttribute('data-status', h.status);
    const q = snap.query;
    setText('query-name', q ? 'query ' + q.name : 'no query');
    if (q) {
      const aggs = q.aggregates.map((a) => a.name).join(', ');
      setText('query-desc', [q.window, q.group_by.length ? 'by ' + q.group_by.join(', ') : null,
        aggs, q.output_mode + ' mode', 'trigger ' + q.trigger].filter(Boolean).join(' · '));
    }
  }

  function renderCards(h) {
    const g = h.generator;
    setText('m-gen', g ? rate(g.events_per_second) : 'off');
    setText('m-gen-sub', g ? 'events/s · ' + num(g.events_sent_total) + ' sent' : 'not running here');
    level('m-gen', g && g.delivery_errors_total > 0 ? 'warn' : '');
    const br = h.broker;
    setText('m-broker', rate(br.records_in_per_second));
    setText('m-broker-sub', br.embedded
      ? 'records/s in · ' + bytes(br.bytes_out_per_second) + '/s out'
      : 'records/s in (topic offsets)');
    const e = h.engine;
    setText('m-engine-in', e ? rate(e.input_rows_per_second) : '–');
    setText('m-engine-in-sub', e ? 'rows/s · ' + num(e.input_rows_total) + ' total' : 'no query');
    setText('m-engine-out', e ? rate(e.output_rows_per_second) : '–');
    setText('m-engine-out-sub', e ? 'rows/s · ' + num(e.output_rows_total) + ' total' : 'no query');
    setText('m-lag', e ? num(e.lag_total) : '–');
    level('m-lag', e && e.lag_total > Math.max(1000, 10 * e.input_rows_per_second) ? 'warn' : '');
    setText('m-wm', e && e.watermark_ms ? clock(e.watermark_ms) : '–');
    setText('m-wm-sub', e && e.watermark_delay_seconds !== null ? secs(e.watermark_delay_seconds) + ' behind' : 'no watermark yet');
    setText('m-late', e ? num(e.late_rows_total) : '–');
    setText('m-dead', e ? num(e.dead_letters_total) : '–');
    setText('m-ckpt', e ? secs(e.checkpoint_age_seconds) : '–');
    setText('m-ckpt-sub', e ? (e.last_epoch !== null ? 'epoch ' + e.last_epoch + ' · ' : '') + e.state : '–');
    level('m-ckpt', h.status === 'down' ? 'bad' : '');
    setText('m-state', e ? num(e.state_rows) + ' rows' : '–');
    setText('m-state-sub', e ? bytes(e.state_memory_bytes) : '–');
    setText('m-rss', bytes(h.process.resident_memory_bytes));
  }

  // ---- results ------------------------------------------------------------------------
  function colorOf(keys, key) {
    const i = keys.indexOf(key);
    return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
  }

  function reselect(keys) {
    state.selected = keys;
    state.hidden.clear();
    connect();
  }

  function renderKeys(res) {
    const chips = $('key-chips');
    const shown = new Set(res.keys);
    const list = res.top_keys.slice(0, 20).map((k) => k.key);
    for (const k of res.keys) if (!list.includes(k)) list.push(k);
    chips.replaceChildren(...list.map((k) => {
      const w = res.top_keys.find((t) => t.key === k);
      const b = el('button', {
        type: 'button', class: 'chip', 'data-key': k, 'aria-pressed': String(shown.has(k)),
        title: w ? num(w.count) + ' events in ' + w.windows + ' windows' : k,
      }, k);
      b.addEventListener('click', () => {
        const cur = res.keys.slice();
        const next = shown.has(k) ? cur.filter((x) => x !== k) : cur.concat([k]);
        reselect(next.length ? next : null);
      });
      return b;
    }));
    const top = $('key-top');
    top.textContent = 'Top ' + TOP;
    top.setAttribute('aria-pressed', String(res.top));
    const dl = $('key-list');
    dl.replaceChildren(...res.top_keys.map((k) => el('option', { value: k.key })));
  }

  function renderLegend(keys) {
    const lg = $('legend');
    lg.replaceChildren(...keys.map((k) => {
      const b = el('button', { type: 'button', 'data-key': k, 'aria-pressed': String(!state.hidden.has(k)), title: 'show / hide ' + k });
      const sw = el('span', { class: 'swatch' });
      sw.style.background = colorOf(keys, k);
      b.append(sw, document.createTextNode(k));
      b.addEventListener('click', () => {
        if (state.hidden.has(k)) state.hidden.delete(k); else state.hidden.add(k);
        if (state.last) renderResults(state.last.results);
      });
      return b;
    }));
  }

  function renderResults(res) {
    const charts = $('charts');
    if (!res) {
      charts.replaceChildren(el('p', { class: 'empty' }, 'No query is running in this process.'));
      return;
    }
    renderKeys(res);
    renderLegend(res.keys);
    if (res.windows.length === 0) {
      charts.replaceChildren(el('p', { class: 'empty' }, 'Waiting for the first results…'));
      renderTable(res);
      return;
    }
    const figs = res.aggregates.map((agg) => {
      const series = res.keys.filter((k) => !state.hidden.has(k)).map((k) => ({
        name: k,
        color: colorOf(res.keys, k),
        points: res.windows
          .filter((w) => w.key === k && typeof w.values[agg] === 'number')
          .map((w) => ({ x: res.windowed ? w.window_end_ms : w.epoch, y: w.values[agg], epoch: w.epoch, final: w.final })),
      }));
      const ends = new Set();
      for (const w of res.windows) if (typeof w.values[agg] === 'number') ends.add(res.windowed ? w.window_end_ms : w.epoch);
      const fig = el('figure', { class: 'chart', 'data-agg': agg, 'data-windows': String(ends.size) });
      fig.append(el('figcaption', null, agg + (res.windowed ? ' per window (by window end)' : '')));
      charts.append(fig); // measured below; replaced in one go afterwards
      fig.append(lineChart(series, { width: fig.clientWidth || 520, height: 190, xTime: res.windowed, zero: isCountColumn(agg), count: isCountColumn(agg) }));
      return fig;
    });
    charts.replaceChildren(...figs);
    renderTable(res);
  }

  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; }
    const raw = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  // One SVG line chart. series: [{name, color, points: [{x, y, epoch?, final?}]}].
  function lineChart(series, opt) {
    const W = Math.max(240, Math.round(opt.width)), H = opt.height;
    const m = { l: 52, r: 28, t: 8, b: 22 };
    const s = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: String(W), height: String(H), role: 'img' });
    const pts = series.flatMap((x) => x.points);
    if (pts.length === 0) return s;
    let x0 = Math.min(...pts.map((p) => p.x)), x1 = Math.max(...pts.map((p) => p.x));
    let y0 = Math.min(...pts.map((p) => p.y)), y1 = Math.max(...pts.map((p) => p.y));
    if (opt.zero) y0 = Math.min(0, y0);
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= 1; y1 += 1; }
    const padY = (y1 - y0) * 0.06;
    y0 = opt.zero && y0 === 0 ? 0 : y0 - padY; y1 += padY;
    const X = (v) => m.l + (v - x0) / (x1 - x0) * (W - m.l - m.r);
    const Y = (v) => H - m.b - (v - y0) / (y1 - y0) * (H - m.t - m.b);
    for (const t of niceTicks(y0, y1, 4)) {
      if (t < y0 || t > y1) continue;
      s.append(svg('line', { class: 'gridline', x1: m.l, x2: W - m.r, y1: Y(t), y2: Y(t) }));
      const lab = svg('text', { class: 'axis-label', x: m.l - 6, y: Y(t) + 4, 'text-anchor': 'end' });
      lab.textContent = num(t, Math.abs(t) < 10 ? 2 : 1);
      s.append(lab);
    }
    const xs = [...new Set(pts.map((p) => p.x))].sort((a, b) => a - b);
    const every = Math.max(1, Math.ceil(xs.length / Math.max(2, Math.floor((W - m.l) / 70))));
    let lastLabel = -Infinity;
    xs.forEach((x, i) => {
      if (i % every !== 0 && i !== xs.length - 1) return;
      // The last label only when it does not run into the one before.
      if (X(x) - lastLabel < 60) return;
      lastLabel = X(x);
      const lab = svg('text', { class: 'axis-label', x: X(x), y: H - 5, 'text-anchor': 'middle' });
      lab.textContent = opt.xTime ? clock(x) : String(x);
      s.append(lab);
    });
    for (const se of series) {
      if (se.points.length === 0) continue;
      const g = svg('g', { class: 'series', 'data-key': se.name });
      const sorted = se.points.slice().sort((a, b) => a.x - b.x);
      g.append(svg('path', {
        class: 'line', stroke: se.color,
        d: sorted.map((p, i) => (i ? 'L' : 'M') + X(p.x).toFixed(1) + ' ' + Y(p.y).toFixed(1)).join(' '),
      }));
      if (opt.dots !== false) {
        for (const p of sorted) {
          const c = svg('circle', {
            class: 'dot', cx: X(p.x).toFixed(1), cy: Y(p.y).toFixed(1), r: sorted.length > 40 ? 2 : 3,
            fill: se.color, 'data-key': se.name, 'data-x': String(p.x), 'data-value': String(p.y),
            'data-epoch': p.epoch === undefined ? '' : String(p.epoch),
          });
          const t = svg('title', {});
          t.textContent = se.name + ' · ' + (opt.xTime ? clock(p.x) : p.x) + ' · ' + cellText(p.y, opt.count);
          c.append(t);
          g.append(c);
        }
      }
      s.append(g);
    }
    return s;
  }

  function renderTable(res) {
    const head = $('windows-head');
    const hcells = [el('th', null, res.group_by.length ? res.group_by.join(' / ') : 'key')];
    if (res.windowed) hcells.push(el('th', null, 'window'));
    for (const a of res.aggregates) hcells.push(el('th', { class: 'num' }, a));
    hcells.push(el('th', null, 'state'), el('th', { class: 'num' }, 'epoch'));
    head.replaceChildren(...hcells);
    // The three most recent windows of the keys shown, newest first.
    const ends = [...new Set(res.windows.map((w) => w.window_end_ms))].sort((a, b) => b - a).slice(0, 3);
    const rows = res.windows
      .filter((w) => ends.includes(w.window_end_ms))
      .sort((a, b) => (b.window_end_ms - a.window_end_ms) || naturalCmp(a.key, b.key));
    const body = $('windows-table').tBodies[0];
    body.replaceChildren(...rows.map((w) => {
      const tr = el('tr', {
        'data-key': w.key, 'data-start': String(w.window_start_ms), 'data-end': String(w.window_end_ms),
        'data-epoch': String(w.epoch), 'data-final': String(w.final),
      });
      tr.append(el('td', { class: 'key' }, w.key));
      if (res.windowed) tr.append(el('td', null, clock(w.window_start_ms) + '–' + clock(w.window_end_ms)));
      for (const a of res.aggregates) {
        const v = w.values[a];
        tr.append(el('td', { class: 'num', 'data-col': a, 'data-value': v === null || v === undefined ? '' : String(v) }, cellText(v, isCountColumn(a))));
      }
      tr.append(el('td', { class: 'state' }, w.final ? 'final' : 'open'), el('td', { class: 'num' }, String(w.epoch)));
      return tr;
    }));
    setText('windows-note', rows.length ? 'open windows still change; final ones are past the watermark' : 'no windows yet');
  }

  // ---- throughput and cluster ---------------------------------------------------------
  function renderRates() {
    const present = RATE_SERIES.filter(([k]) => state.rates.some((r) => r[k] !== null && r[k] !== undefined));
    $('rates-legend').replaceChildren(...present.map(([, name, color]) => {
      const s = el('span', { class: 'item' });
      const sw = el('span', { class: 'swatch' });
      sw.style.background = color;
      s.append(sw, document.createTextNode(name));
      return s;
    }));
    const series = present.map(([k, name, color]) => ({
      name, color,
      points: state.rates.filter((r) => r[k] !== null && r[k] !== undefined).map((r) => ({ x: r.t_ms, y: r[k] })),
    }));
    const box = $('rates-chart');
    box.replaceChildren();
    if (series.every((s) => s.points.length === 0)) {
      box.append(el('p', { class: 'empty' }, 'Collecting…'));
      return;
    }
    box.append(lineChart(series, { width: box.clientWidth || 600, height: 170, xTime: true, zero: true, dots: false }));
  }

  function renderLag(e) {
    const body = $('lag-table').tBodies[0];
    const rows = e ? e.lag : [];
    body.replaceChildren(...rows.map((p) => {
      const tr = el('tr', { 'data-topic': p.topic, 'data-partition': String(p.partition) });
      tr.append(el('td', null, p.topic), el('td', { class: 'num' }, String(p.partition)),
        el('td', { class: 'num' }, num(p.offset)), el('td', { class: 'num' }, num(p.latest_offset)),
        el('td', { class: 'num', 'data-value': String(p.lag) }, num(p.lag)));
      return tr;
    }));
    if (rows.length === 0) body.append(emptyRow(5, e ? 'no epoch yet' : 'no query'));
  }

  // A query spread over processes: which share of it this page shows, its tasks, the group's
  // latest events here.
  const EVENT_WORDS = {
    tasksAssigned: 'assigned', tasksRevoked: 'moved away', tasksLost: 'lost',
    tasksStopped: 'stopped', taskFenced: 'fenced', taskFailed: 'failed',
  };
  function renderInstance(i) {
    const scope = $('instance-scope');
    const panel = $('instance-panel');
    scope.hidden = !i;
    panel.hidden = !i;
    if (!i) return;
    setText('instance-scope', i.scope);
    scope.setAttribute('data-whole', String(i.whole_query));
    setText('instance-group', 'group ' + i.group + (i.members !== null ? ' · ' + i.members + ' members' : ''));
    const body = $('instance-tasks').tBodies[0];
    body.replaceChildren(...i.tasks.map((t) => {
      const tr = el('tr', { 'data-task': String(t.task) });
      tr.append(el('td', { class: 'num' }, String(t.task)),
        el('td', { class: 'num' }, t.last_epoch === null ? '–' : String(t.last_epoch)),
        el('td', { class: 'num' }, num(t.lag)),
        el('td', null, t.watermark_ms ? clock(t.watermark_ms) : '–'),
        el('td', { class: 'num' }, num(t.state_rows)),
        el('td', { class: 'num' }, bytes(t.state_memory_bytes)));
      return tr;
    }));
    if (i.tasks.length === 0) body.append(emptyRow(6, 'no task runs here'));
    $('instance-events').replaceChildren(...i.events.slice(-5).reverse().map((e) =>
      el('li', { 'data-event': e.event }, e.timestamp.slice(11, 19) + ' · task' +
        (e.tasks.length === 1 ? ' ' : 's ') + e.tasks.join(', ') + ' ' + (EVENT_WORDS[e.event] || e.event))));
  }

  function emptyRow(span, text) {
    const tr = el('tr');
    tr.append(el('td', { colspan: String(span), class: 'muted' }, text));
    return tr;
  }

  function renderTopics(c) {
    setText('brokers', c.brokers + (c.error ? ' · ' + c.error : ''));
    const body = $('topics-table').tBodies[0];
    body.replaceChildren(...c.topics.map((t) => {
      const tr = el('tr', { 'data-topic': t.name });
      const name = el('td', null, t.name);
      if (t.internal) name.append(el('span', { class: 'tag' }, 'internal'));
      const offs = t.partitions.slice(0, 12).map((p) => p.partition + ': ' + p.log_start_offset + '–' + p.high_watermark).join('  ') +
        (t.partitions.length > 12 ? '  …' : '');
      tr.append(name, el('td', { class: 'num' }, String(t.partitions.length)),
        el('td', { class: 'num', 'data-value': String(t.records) }, num(t.records)), el('td', { class: 'wrap' }, offs));
      return tr;
    }));
    if (c.topics.length === 0) body.append(emptyRow(4, c.refreshed_ms ? 'no topics' : 'reading…'));
  }

  function renderGroups(c) {
    const body = $('groups-table').tBodies[0];
    body.replaceChildren(...c.groups.map((g) => {
      const tr = el('tr', { 'data-group': g.group });
      const members = g.members.length === 0 ? 'none' : g.members.map((m) => {
        const a = m.assignment.map((x) => x.topic + '[' + x.partitions.join(',') + ']').join(' ');
        return m.client_id + '@' + m.host + (a ? ' → ' + a : '');
      }).join('; ');
      const lag = g.offsets.reduce((s, o) => s + (o.lag || 0), 0);
      const offs = g.offsets.slice(0, 12).map((o) => o.topic + '/' + o.partition + ': ' +
        (o.committed === null ? '–' : o.committed) + ' of ' + o.log_end).join('  ') + (g.offsets.length > 12 ? '  …' : '');
      tr.append(el('td', null, g.group), el('td', null, g.state || '–'),
        el('td', { class: 'wrap' }, g.members.length + ' · ' + members),
        el('td', { class: 'num', 'data-value': String(lag) }, num(lag)), el('td', { class: 'wrap' }, offs || '–'));
      return tr;
    }));
    if (c.groups.length === 0) body.append(emptyRow(5, c.refreshed_ms ? 'no consumer groups' : 'reading…'));
  }

  // ---- start --------------------------------------------------------------------------
  function init() {
    initTheme();
    $('key-top').addEventListener('click', () => reselect(null));
    $('key-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const k = $('key-input').value.trim();
      if (!k) return;
      const cur = state.last && state.last.results ? state.last.results.keys.slice() : [];
      if (!cur.includes(k)) cur.push(k);
      $('key-input').value = '';
      reselect(cur);
    });
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { if (state.last) { renderResults(state.last.results); renderRates(); } }, 150);
    });
    connect();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
})();
