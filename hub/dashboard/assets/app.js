// Canopy fleet dashboard: loads /api/fleet, then follows /api/events
// (fleet snapshots and per-second telemetry rates) and re-renders.
//
// Every piece of data reaches the page through textContent or attribute
// values, never through HTML parsing: device ids, errors and versions come
// from devices and must not be able to inject markup.
'use strict';

(function () {
  const WINDOW_MS = 5 * 60 * 1000; // telemetry chart span
  const RATE_FRESH_MS = 2500;      // a rate older than this counts as 0 msgs/s
  const SPANS = [ // chart time axes: span and label spacing
    { ms: 60000, tick: 15000 },
    { ms: 120000, tick: 30000 },
    { ms: WINDOW_MS, tick: 60000 },
  ];
  const GRID = 5; // horizontal chart divisions: 1, 2, 5, 10 divide evenly
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;

  const state = {
    fleet: null,
    skew: 0,            // local clock minus the hub's clock, in ms
    selected: null,     // {tenant, device}
    filter: '',         // lower-case text a device's id, group or version must contain
    show: 'all',        // all | offline | backlog | attention
    series: new Map(),  // "tenant/device" -> [{t, msgs, value}], oldest first
    source: null,
    retry: RETRY_MIN_MS,
    retryTimer: 0,
  };

  const $ = (id) => document.getElementById(id);

  // el builds an element. Strings among children become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  // ---- formatting ------------------------------------------------------

  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const str = (v) => (typeof v === 'string' ? v : '');
  const arr = (v) => (Array.isArray(v) ? v : []);

  function humanBytes(n) {
    n = num(n);
    if (n === null) return '–';
    const units = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 100 ? 1 : 0)) + ' ' + units[i];
  }

  function humanCount(n) {
    n = num(n);
    if (n === null) return '–';
    if (n < 1000) return String(Math.round(n));
    if (n < 1e6) return (n / 1e3).toFixed(n < 1e4 ? 1 : 0) + 'k';
    return (n / 1e6).toFixed(n < 1e7 ? 1 : 0) + 'M';
  }

  function humanDuration(sec) {
    sec = num(sec);
    if (sec === null) return '–';
    if (sec < 1) return '<1 s';
    if (sec < 60) return Math.floor(sec) + ' s';
    if (sec < 3600) return Math.floor(sec / 60) + ' min';
    if (sec < 86400) {
      const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60);
      return m ? h + ' h ' + m + ' min' : h + ' h';
    }
    const d = Math.floor(sec / 86400), h = Math.floor((sec % 86400) / 3600);
    return h ? d + ' d ' + h + ' h' : d + ' d';
  }

  const hubNow = () => Date.now() - state.skew;

  function parseTime(s) {
    if (typeof s !== 'string' || s === '') return null;
    const t = Date.parse(s);
    return Number.isFinite(t) && t > 0 ? t : null;
  }

  function ago(t) {
    if (t === null) return 'never';
    const sec = Math.max(0, (hubNow() - t) / 1000);
    if (sec < 2) return 'just now';
    return humanDuration(sec) + ' ago';
  }

  function formatValue(v) {
    v = num(v);
    if (v === null) return '–';
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 0.01)) return v.toExponential(2);
    return String(Math.round(v * 100) / 100);
  }

  // relTime is a cell whose text the clock tick keeps current.
  function relTime(t, cls) {
    const e = el('span', { class: cls || null, title: t === null ? null : new Date(t).toLocaleString() }, ago(t));
    if (t !== null) e.dataset.ts = String(t);
    return e;
  }

  // firmwareClass groups the agent's states by colour.
  function firmwareClass(s) {
    switch (s) {
      case 'applied': case 'completed': case 'done': return 'ok';
      case 'failed': case 'halted': case 'rolled-back': return 'bad';
      case 'idle': case 'cancelled': case 'canceled': case '': return '';
      case 'pending': case 'waiting': case 'scheduled': return 'warn';
      default: return 'busy';
    }
  }

  // ---- rendering -------------------------------------------------------

  function renderHeader(f) {
    const srv = f.server || {};
    $('hub-name').textContent = str(srv.name) || 'hub';
    const size = num(srv.cluster_size) || 1;
    const meta = [str(srv.version), size > 1 ? size + '-node cluster' : 'single node'].filter(Boolean);
    $('hub-meta').textContent = meta.join(' · ');
    document.title = (str(srv.name) || 'Canopy') + ' · Canopy fleet';

    let devices = 0, online = 0, backlog = 0, running = 0;
    for (const t of arr(f.tenants)) {
      for (const d of arr(t.devices)) {
        devices++;
        if (d.online === true) online++;
        backlog += num(d.backlog_msgs) || 0;
      }
      for (const r of arr(t.rollouts)) if (r.state === 'running') running++;
    }
    const tenants = arr(f.tenants).length;
    $('summary').replaceChildren(
      el('span', null, el('b', null, String(tenants)), tenants === 1 ? ' tenant' : ' tenants'),
      el('span', null, el('b', null, online + ' / ' + devices), ' online'),
      el('span', null, el('b', null, humanCount(backlog)), ' msgs queued'),
      el('span', null, el('b', null, String(running)), running === 1 ? ' rollout running' : ' rollouts running'),
    );
  }

  function healthCell(hl) {
    if (!hl || typeof hl !== 'object') return el('span', { class: 'dim' }, '–');
    const chips = [];
    const temp = num(hl.cpu_temp_c);
    if (temp !== null) chips.push(el('span', { class: 'chip' + (temp >= 80 ? ' bad' : temp >= 70 ? ' warn' : ''), title: 'CPU temperature' }, temp.toFixed(0) + ' °C'));
    const load = num(hl.load1);
    if (load !== null) chips.push(el('span', { class: 'chip', title: 'load average, 1 min' }, 'load ' + load.toFixed(2)));
    const free = num(hl.disk_free_bytes), total = num(hl.disk_total_bytes);
    if (free !== null && total) {
      const pct = (100 * free) / total;
      chips.push(el('span', { class: 'chip' + (pct < 5 ? ' bad' : pct < 15 ? ' warn' : ''), title: humanBytes(free) + ' free of ' + humanBytes(total) }, 'disk ' + pct.toFixed(0) + '% free'));
    }
    if (hl.throttled === true) chips.push(el('span', { class: 'chip bad', title: 'under-voltage, frequency capping or thermal throttling' }, '⚠ throttled'));
    if (!chips.length) return el('span', { class: 'dim' }, '–');
    return el('span', { class: 'chips' }, chips);
  }

  function firmwareCell(list) {
    list = arr(list);
    if (!list.length) return el('span', { class: 'dim' }, '–');
    return list.map((fw) =>
      el('span', { class: 'fw', title: str(fw.error) || null },
        el('span', { class: 'fw-name' }, str(fw.name)),
        el('span', { class: 'fw-ver' }, str(fw.version) || '—'),
        str(fw.state) ? el('span', { class: 'state ' + firmwareClass(str(fw.state)) }, str(fw.state)) : null));
  }

  function isSelected(tenant, id) {
    return !!state.selected && state.selected.tenant === tenant && state.selected.device === id;
  }

  function select(tenant, id) {
    state.selected = isSelected(tenant, id) ? null : { tenant, device: id };
    render();
  }

  function deviceRow(tenant, d) {
    const id = str(d.id);
    const seen = parseTime(d.last_seen);
    const online = d.online === true;
    const badge = online
      ? el('span', { class: 'badge online' }, 'online')
      : el('span', { class: 'badge ' + (seen === null ? 'never' : 'offline') }, seen === null ? 'never seen' : 'offline');
    const msgs = num(d.backlog_msgs) || 0;
    const dropped = num(d.dropped) || 0;
    const row = el('tr', {
      'data-device': id,
      'data-tenant': tenant,
      'data-state': online ? 'online' : 'offline',
      'aria-selected': isSelected(tenant, id) ? 'true' : 'false',
      tabindex: '0',
      onclick: () => select(tenant, id),
      onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); select(tenant, id); } },
    },
      el('td', null, el('span', { class: 'dev-id' }, id), d.group ? el('span', { class: 'group' }, str(d.group)) : null),
      el('td', null, badge),
      el('td', { class: 'last-seen' }, relTime(seen)),
      el('td', null, str(d.version) ? el('span', { class: 'fw-ver' }, str(d.version)) : el('span', { class: 'dim' }, '–')),
      el('td', { class: 'num backlog', 'data-msgs': String(msgs) },
        msgs ? el('span', { class: online ? '' : 'warn-text' }, humanCount(msgs) + ' msgs') : el('span', { class: 'dim' }, '0'),
        msgs ? el('span', { class: 'sub' }, ' · ' + humanBytes(d.backlog_bytes)) : null,
        dropped ? el('span', { class: 'bad-text', title: 'messages dropped on the device' }, ' · ' + humanCount(dropped) + ' dropped') : null),
      el('td', { class: 'num' }, msgs ? humanDuration(d.oldest_age_seconds) : el('span', { class: 'dim' }, '–')),
      el('td', null, healthCell(d.health)),
      el('td', null, firmwareCell(d.firmware)),
    );
    return row;
  }

  // needsAttention: offline with data waiting, dropping data, or unwell.
  function needsAttention(d) {
    const hl = d.health && typeof d.health === 'object' ? d.health : {};
    const temp = num(hl.cpu_temp_c), free = num(hl.disk_free_bytes), total = num(hl.disk_total_bytes);
    return (d.online !== true && (num(d.backlog_msgs) || 0) > 0) ||
      (num(d.dropped) || 0) > 0 ||
      hl.throttled === true ||
      (temp !== null && temp >= 70) ||
      (free !== null && total > 0 && free / total < 0.15) ||
      arr(d.firmware).some((fw) => fw.state === 'failed') ||
      str(d.link && d.link.last_error) !== '';
  }

  function shown(d) {
    switch (state.show) {
      case 'offline': if (d.online === true) return false; break;
      case 'backlog': if (!(num(d.backlog_msgs) > 0)) return false; break;
      case 'attention': if (!needsAttention(d)) return false; break;
    }
    if (!state.filter) return true;
    return [d.id, d.group, d.version].some((v) => str(v).toLowerCase().includes(state.filter));
  }

  function devicesCard(t) {
    const all = arr(t.devices);
    const devices = all.filter(shown);
    const online = all.filter((d) => d.online === true).length;
    const filtered = devices.length !== all.length;
    const title = el('div', { class: 'card-title' }, 'Devices',
      el('span', { class: 'count' }, online + ' of ' + all.length + ' online' + (filtered ? ' · ' + devices.length + ' shown' : '')));
    if (!all.length) {
      return el('section', { class: 'card' }, title, el('p', { class: 'empty' }, 'No devices yet. Enroll one with canopy-hub device add.'));
    }
    if (!devices.length) {
      return el('section', { class: 'card' }, title, el('p', { class: 'empty' }, 'No device matches the filter.'));
    }
    const head = el('tr', null, ['Device', 'Status', 'Last seen', 'Version', 'Backlog', 'Oldest', 'Health', 'Firmware']
      .map((h) => el('th', { class: h === 'Backlog' || h === 'Oldest' ? 'num' : null }, h)));
    const body = el('tbody', null, devices.map((d) => deviceRow(str(t.name), d)));
    return el('section', { class: 'card' }, title,
      el('div', { class: 'table-wrap' }, el('table', { class: 'devices' }, el('thead', null, head), body)));
  }

  function rolloutItem(r) {
    const n = num(r.devices) || 0;
    const parts = [
      ['applied', num(r.applied) || 0, 'seg-applied'],
      ['failed', num(r.failed) || 0, 'seg-failed'],
      ['in progress', num(r.in_progress) || 0, 'seg-progress'],
      ['pending', num(r.pending) || 0, 'seg-pending'],
    ];
    const total = Math.max(n, parts.reduce((s, p) => s + p[1], 0));
    const bar = el('div', { class: 'bar', role: 'img', 'aria-label': parts.map((p) => p[1] + ' ' + p[0]).join(', ') });
    for (const [label, count, cls] of parts) {
      if (!count || !total) continue;
      const seg = el('span', { class: cls, title: count + ' ' + label });
      seg.style.width = ((100 * count) / total).toFixed(3) + '%';
      bar.append(seg);
    }
    const legend = el('div', { class: 'bar-legend' }, parts.map(([label, count, cls]) =>
      el('span', { 'data-count': label.replace(' ', '_') }, el('i', { class: cls }), el('b', null, String(count)), ' ' + label)));
    const failures = arr(r.failures);
    const shown = failures.slice(0, 8);
    const created = parseTime(r.created);
    return el('div', { class: 'rollout', 'data-rollout': str(r.id), 'data-state': str(r.state) },
      el('div', { class: 'rollout-head' },
        el('span', { class: 'rollout-title' }, str(r.firmware), el('span', { class: 'fw-ver' }, str(r.version))),
        el('span', { class: 'state ' + firmwareClass(str(r.state)) }, str(r.state) || 'unknown')),
      el('div', { class: 'rollout-meta' },
        el('span', { class: 'mono' }, str(r.id)), ' · ' + n + (n === 1 ? ' device' : ' devices') + ' · started ', relTime(created)),
      str(r.reason) ? el('div', { class: 'rollout-reason' }, str(r.reason)) : null,
      bar, legend,
      shown.length ? el('ul', { class: 'failures' }, shown.map((f) =>
        el('li', null, el('span', { class: 'dev-id' }, str(f.device)), el('span', { class: 'err' }, str(f.error))))) : null,
      failures.length > shown.length ? el('div', { class: 'sub' }, '+ ' + (failures.length - shown.length) + ' more failures') : null,
    );
  }

  function rolloutsCard(t) {
    const rollouts = arr(t.rollouts);
    const running = rollouts.filter((r) => r.state === 'running').length;
    return el('section', { class: 'card' },
      el('div', { class: 'card-title' }, 'Rollouts', el('span', { class: 'count' }, running ? running + ' running' : rollouts.length ? 'none running' : '')),
      rollouts.length
        ? el('div', { class: 'rollouts' }, rollouts.map(rolloutItem))
        : el('p', { class: 'empty' }, 'No rollouts.'));
  }

  // ---- device detail and telemetry chart ---------------------------------

  // The detail card and its canvas persist across renders so the chart
  // does not flicker when a fleet snapshot arrives.
  const detail = {
    card: null, title: null, rate: null, value: null, facts: null, canvas: null,
  };

  function buildDetail() {
    detail.title = el('span', null);
    detail.rate = el('span', { class: 'stat-value', id: 'tele-rate', 'data-rate': '0' });
    detail.value = el('span', { class: 'stat-value', id: 'tele-value' });
    detail.canvas = el('canvas', { class: 'chart', id: 'tele-chart', 'aria-label': 'telemetry over the last 5 minutes' });
    detail.facts = el('dl', { class: 'facts' });
    detail.card = el('section', { class: 'card detail', id: 'detail' },
      el('div', { class: 'card-title' }, detail.title,
        el('button', { class: 'close', type: 'button', title: 'Close', 'aria-label': 'Close', onclick: () => { state.selected = null; render(); } }, '×')),
      el('div', { class: 'detail-grid' },
        el('div', { class: 'chart-box' },
          el('div', { class: 'chart-stats' },
            el('div', null, el('span', { class: 'stat-label' }, 'Telemetry'), detail.rate),
            el('div', null, el('span', { class: 'stat-label' }, 'Last value'), detail.value),
            el('div', { class: 'legend' },
              el('span', null, el('i', { class: 'l-rate' }), 'msgs/s'),
              el('span', null, el('i', { class: 'l-value' }), 'value'))),
          detail.canvas),
        detail.facts));
  }

  function fact(label, value, mono) {
    return [el('dt', null, label), el('dd', { class: mono ? 'mono' : null }, value)];
  }

  function renderDetail(tenant, d) {
    if (!detail.card) buildDetail();
    const id = str(d.id);
    detail.card.dataset.device = id;
    detail.card.dataset.tenant = tenant;
    detail.title.replaceChildren(el('span', { class: 'dev-id' }, id), el('span', { class: 'dim' }, tenant));
    const link = d.link && typeof d.link === 'object' ? d.link : {};
    const hl = d.health && typeof d.health === 'object' ? d.health : null;
    const memA = hl ? num(hl.mem_available_bytes) : null, memT = hl ? num(hl.mem_total_bytes) : null;
    detail.facts.replaceChildren(
      ...fact('Uplink', str(link.url) || '–', true),
      ...fact('Connected', relTime(parseTime(link.since))),
      ...fact('Reconnects', String(num(link.reconnects) || 0)),
      ...(str(link.last_error) ? fact('Last error', el('span', { class: 'bad-text' }, str(link.last_error))) : []),
      ...fact('Started', relTime(parseTime(d.started))),
      ...fact('Backlog', humanCount(d.backlog_msgs) + ' msgs, ' + humanBytes(d.backlog_bytes)),
      ...fact('Dropped', humanCount(num(d.dropped) || 0)),
      ...(memA !== null && memT ? fact('Memory', humanBytes(memA) + ' free of ' + humanBytes(memT)) : []),
    );
    updateTelemetryText();
    return detail.card;
  }

  function seriesFor(sel) {
    return sel ? state.series.get(sel.tenant + '/' + sel.device) || [] : [];
  }

  function updateTelemetryText() {
    if (!detail.card || !state.selected) return;
    const pts = seriesFor(state.selected);
    const last = pts.length ? pts[pts.length - 1] : null;
    const fresh = last && hubNow() - last.t <= RATE_FRESH_MS;
    const rate = fresh ? last.msgs : 0;
    detail.rate.dataset.rate = String(rate);
    detail.rate.replaceChildren(String(rate), el('span', { class: 'unit' }, 'msgs/s'));
    let value = null;
    for (let i = pts.length - 1; i >= 0; i--) if (pts[i].value !== null) { value = pts[i].value; break; }
    detail.value.textContent = formatValue(value);
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function drawChart() {
    const c = detail.canvas;
    if (!c || !c.isConnected) return;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);

    const pad = { l: 34, r: 44, t: 8, b: 20 };
    const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
    const now = hubNow();
    const all = seriesFor(state.selected).filter((p) => p.t >= now - WINDOW_MS);
    // The page knows only what it received since it opened, so the time
    // axis grows with the data (1, 2, then 5 minutes) instead of leaving a
    // freshly opened chart mostly blank.
    const have = all.length ? now - all[0].t : 0;
    const spanSel = SPANS.find((s) => s.ms >= have) || SPANS[SPANS.length - 1];
    const span = spanSel.ms, from = now - span;
    const pts = all.filter((p) => p.t >= from);
    const x = (t) => pad.l + ((t - from) / span) * pw;

    const rateMax = niceMax(Math.max(0, ...pts.map((p) => p.msgs)));
    const vals = pts.map((p) => p.value).filter((v) => v !== null);
    let vmin = Math.min(...vals), vmax = Math.max(...vals);
    if (!vals.length) { vmin = 0; vmax = 1; }
    if (vmin === vmax) { vmin -= 1; vmax += 1; }
    const vpad = (vmax - vmin) * 0.1;
    vmin -= vpad; vmax += vpad;
    const yr = (v) => pad.t + ph - (v / rateMax) * ph;
    const yv = (v) => pad.t + ph - ((v - vmin) / (vmax - vmin)) * ph;

    g.font = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
    g.textBaseline = 'middle';
    g.lineWidth = 1;

    // Grid and left (rate) axis.
    for (let i = 0; i <= GRID; i++) {
      const y = Math.round(pad.t + (ph * i) / GRID) + 0.5;
      g.strokeStyle = i === GRID ? '#cfd5de' : '#eef1f5';
      g.beginPath(); g.moveTo(pad.l, y); g.lineTo(pad.l + pw, y); g.stroke();
      g.fillStyle = '#7b8698';
      g.textAlign = 'right';
      g.fillText(formatAxis(rateMax * (1 - i / GRID)), pad.l - 6, y);
      if (vals.length) {
        g.textAlign = 'left';
        g.fillStyle = '#c06a10';
        g.fillText(formatAxis(vmax - ((vmax - vmin) * i) / GRID), pad.l + pw + 6, y);
      }
    }
    // Time axis: a label per minute.
    g.textAlign = 'center';
    g.textBaseline = 'top';
    g.fillStyle = '#7b8698';
    for (let back = span; back >= 0; back -= spanSel.tick) {
      const label = back === 0 ? 'now' : back % 60000 === 0 ? '−' + back / 60000 + ' min' : '−' + back / 1000 + ' s';
      g.fillText(label, Math.min(Math.max(x(now - back), pad.l + 16), pad.l + pw - 10), pad.t + ph + 5);
    }

    if (!pts.length) {
      g.textAlign = 'center';
      g.textBaseline = 'middle';
      g.fillStyle = '#9aa3b2';
      g.fillText('No telemetry from this device since the page opened', pad.l + pw / 2, pad.t + ph / 2);
      return;
    }

    // Rate: a stepped area, one step per second, dropping to zero where
    // telemetry paused.
    g.beginPath();
    let open = false, prevT = null;
    const base = pad.t + ph;
    for (const p of pts) {
      const x1 = x(p.t), x0 = x(p.t - 1000), y = yr(p.msgs);
      if (!open || p.t - prevT > 1500) {
        if (open) g.lineTo(x(prevT), base);
        g.moveTo(Math.max(x0, pad.l), base);
        open = true;
      }
      g.lineTo(Math.max(x0, pad.l), y);
      g.lineTo(x1, y);
      prevT = p.t;
    }
    if (open) g.lineTo(x(prevT), base);
    g.fillStyle = 'rgba(59, 130, 246, 0.11)';
    g.fill();
    g.strokeStyle = '#5b93e6';
    g.lineWidth = 1.25;
    g.stroke();

    // Value: a line, broken where telemetry paused for more than 5 s.
    g.strokeStyle = '#e8871e';
    g.lineWidth = 1.75;
    g.lineJoin = 'round';
    g.beginPath();
    let prev = null;
    for (const p of pts) {
      if (p.value === null) continue;
      const px = x(p.t), py = yv(p.value);
      if (prev === null || p.t - prev > 5000) g.moveTo(px, py); else g.lineTo(px, py);
      prev = p.t;
    }
    g.stroke();
  }

  function formatAxis(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k';
    if (a >= 100 || v === Math.round(v)) return String(Math.round(v));
    return String(Number(v.toFixed(a >= 10 ? 1 : 2)));
  }

  // ---- whole page ------------------------------------------------------

  function render() {
    const f = state.fleet;
    if (!f) return;
    renderHeader(f);
    const tenants = arr(f.tenants);
    const main = $('fleet');
    main.removeAttribute('aria-busy');
    if (!tenants.length) {
      main.replaceChildren(el('p', { class: 'empty' }, 'No tenants yet. Add one with canopy-hub tenant add.'));
      return;
    }
    let found = false;
    const sections = tenants.map((t) => {
      const name = str(t.name);
      const col = el('div', { class: 'main-col' }, devicesCard(t));
      if (state.selected && state.selected.tenant === name) {
        const d = arr(t.devices).find((d) => str(d.id) === state.selected.device);
        if (d) { col.append(renderDetail(name, d)); found = true; }
      }
      const devices = arr(t.devices);
      const backlog = devices.reduce((s, d) => s + (num(d.backlog_msgs) || 0), 0);
      return el('section', { class: 'tenant', 'data-tenant': name },
        el('div', { class: 'tenant-head' },
          el('h2', null, name),
          el('span', { class: 'muted' }, devices.length + (devices.length === 1 ? ' device' : ' devices') +
            (backlog ? ' · ' + humanCount(backlog) + ' msgs waiting on devices' : ''))),
        el('div', { class: 'tenant-body' }, col, arr(t.rollouts).length ? rolloutsCard(t) : null));
    });
    if (state.selected && !found) state.selected = null;
    // Rows are rebuilt on every snapshot; keep keyboard focus on the same
    // device.
    const a = document.activeElement;
    const focused = a && a.dataset && a.dataset.device !== undefined && main.contains(a)
      ? { device: a.dataset.device, tenant: a.dataset.tenant } : null;
    main.replaceChildren(...sections);
    if (focused) {
      for (const row of main.querySelectorAll('tr[data-device]')) {
        if (row.dataset.device === focused.device && row.dataset.tenant === focused.tenant) { row.focus({ preventScroll: true }); break; }
      }
    }
    drawChart();
  }

  function tick() {
    for (const e of document.querySelectorAll('[data-ts]')) {
      const t = Number(e.dataset.ts);
      if (Number.isFinite(t)) e.textContent = ago(t);
    }
    updateTelemetryText();
    drawChart();
  }

  // ---- data ------------------------------------------------------------

  function acceptFleet(f) {
    if (!f || typeof f !== 'object' || !Array.isArray(f.tenants)) throw new Error('malformed fleet snapshot');
    const now = parseTime(f.server && f.server.now);
    if (now !== null) state.skew = Date.now() - now;
    state.fleet = f;
    $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString();
    render();
  }

  function acceptTelemetry(ev) {
    const t = num(ev && ev.t);
    if (t === null) return;
    for (const d of arr(ev.devices)) {
      const key = str(d.tenant) + '/' + str(d.device);
      let pts = state.series.get(key);
      if (!pts) state.series.set(key, (pts = []));
      pts.push({ t, msgs: Math.max(0, num(d.msgs) || 0), value: num(d.value) });
    }
    const from = t - WINDOW_MS - 5000;
    for (const [key, pts] of state.series) {
      let i = 0;
      while (i < pts.length && pts[i].t < from) i++;
      if (i) pts.splice(0, i);
      if (!pts.length) state.series.delete(key);
    }
    if (state.selected) { updateTelemetryText(); drawChart(); }
  }

  function setConn(live, text) {
    const c = $('conn');
    c.dataset.state = live ? 'live' : 'down';
    $('conn-text').textContent = text;
  }

  function showBanner(parts) {
    const b = $('banner');
    if (!parts) { b.hidden = true; b.replaceChildren(); return; }
    b.replaceChildren(...parts);
    b.hidden = false;
  }

  function sessionEnded() {
    setConn(false, 'Signed out');
    showBanner(['The dashboard session has ended. Run ', el('code', null, 'canopy-hub dashboard url'), ' on the hub and open the link it prints.']);
  }

  // loadFleet fetches a snapshot; it tells whether the session is valid.
  async function loadFleet() {
    const resp = await fetch('/api/fleet', { headers: { Accept: 'application/json' }, cache: 'no-store', credentials: 'same-origin' });
    if (resp.status === 401) return false;
    if (!resp.ok) throw new Error('GET /api/fleet: ' + resp.status);
    acceptFleet(await resp.json());
    return true;
  }

  function listen(event, fn) {
    state.source.addEventListener(event, (e) => {
      let data;
      try { data = JSON.parse(e.data); } catch (err) { console.warn('canopy: bad ' + event + ' event', err); return; }
      try { fn(data); } catch (err) { console.warn('canopy: ' + event + ' event', err); }
    });
  }

  function connect() {
    clearTimeout(state.retryTimer);
    if (state.source) state.source.close();
    state.source = new EventSource('/api/events');
    listen('fleet', acceptFleet);
    listen('telemetry', acceptTelemetry);
    state.source.onopen = () => {
      state.retry = RETRY_MIN_MS;
      showBanner(null);
      setConn(true, 'Live');
    };
    state.source.onerror = () => {
      if (state.source.readyState === EventSource.CONNECTING) {
        setConn(false, 'Reconnecting…');
        return;
      }
      // Closed for good (an HTTP error such as an expired session):
      // EventSource gives up, so find out why and retry with backoff.
      setConn(false, 'Reconnecting…');
      state.retryTimer = setTimeout(recover, state.retry);
      state.retry = Math.min(state.retry * 2, RETRY_MAX_MS);
    };
  }

  async function recover() {
    try {
      if (!(await loadFleet())) { sessionEnded(); return; }
    } catch (err) {
      setConn(false, 'Reconnecting…');
      state.retryTimer = setTimeout(recover, state.retry);
      state.retry = Math.min(state.retry * 2, RETRY_MAX_MS);
      return;
    }
    connect();
  }

  function start() {
    window.addEventListener('resize', drawChart);
    $('filter').addEventListener('input', (e) => { state.filter = e.target.value.trim().toLowerCase(); render(); });
    $('show').addEventListener('change', (e) => { state.show = e.target.value; render(); });
    setInterval(tick, 1000);
    recover();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
