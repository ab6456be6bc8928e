// acdmon queue table (/table): every queue in one dense row, sorted by
// service-level breach, then by callers waiting. For a supervisor's desktop
// with hundreds of queues: only the rows in view are in the DOM (a pool of
// row elements moved as the list scrolls), so a delta costs a sort of the
// queues plus the repaint of ~40 rows, whatever the floor's size.
// Same feed as the wall: /ws protocol version 2 (snapshot, then JSON Merge
// Patches keyed by queue; longest wait from `now` and `oldest_since`).
"use strict";
(function () {
  const cfg = window.ACDMON_WALL || {};
  const I = window.acdmonI18n;
  const T = I.t;
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const filter = params.get("queues") || "";
  const SL_AMBER = typeof cfg.sl_amber === "number" ? cfg.sl_amber : 0.05;
  const STALE_MS = (cfg.stale_after_s || 15) * 1000;
  const ROW_H = 30, OVERSCAN = 8;

  const queues = new Map();   // name -> queue document
  let order = [];             // names, sorted
  let orderDirty = true;
  let seq = null, skewMs = 0, lastMsg = 0, ws = null, attempt = 0, connected = false;
  let pending = [];           // receipt times (performance.now()) of messages not yet on screen
  let frame = 0;
  // Update cost, for the browser test and anyone curious (window.acdmonTable.stats).
  const stats = { deltas: 0, workMs: [], toScreenMs: [] };

  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const pct = (x) => (x == null ? "\u2013" : Math.round(x * 100) + "%");
  const ms = (ts) => { const t = Date.parse(ts); return isNaN(t) ? null : t; };
  const serverNow = () => Date.now() + skewMs;

  function mergePatch(target, patch) {
    if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
    const t = target !== null && typeof target === "object" && !Array.isArray(target) ? target : {};
    for (const k of Object.keys(patch)) {
      if (patch[k] === null) delete t[k]; else t[k] = mergePatch(t[k], patch[k]);
    }
    return t;
  }

  function sl(q) { return q.windows && q.windows.rolling ? q.windows.rolling.service_level : null; }
  function breach(q) { const s = sl(q); return s != null && s < q.sl_target; }
  function longestWait(q) {
    if (!q.waiting || !q.oldest_since) return 0;
    const since = ms(q.oldest_since);
    return since == null ? 0 : Math.max(0, (serverNow() - since) / 1000);
  }
  // Breaching queues first (furthest below target first), then the most
  // callers waiting, then by name.
  function compare(a, b) {
    const ba = breach(a), bb = breach(b);
    if (ba !== bb) return ba ? -1 : 1;
    if (a.waiting !== b.waiting) return b.waiting - a.waiting;
    if (ba) { const d = (sl(a) - a.sl_target) - (sl(b) - b.sl_target); if (d) return d; }
    return a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0;
  }

  function band(x, target) {
    if (x == null) return "";
    return x >= target ? "green" : x >= target - SL_AMBER ? "amber" : "red";
  }
  function waitBand(w, threshold) { return w <= threshold ? "green" : w <= 2 * threshold ? "amber" : "red"; }

  function rowHtml(q) {
    const r = q.windows.rolling, today = q.windows.today, a = q.agents;
    const lw = longestWait(q);
    const e = q.escalation;
    const stage = e && e.stage > 0 ? esc(T("tile.stage", { n: e.stage, name: e.stage_name })) : "";
    return `<span title="${esc(q.queue)}">${esc(q.queue)}</span>` +
      `<span class="num" data-field="waiting">${q.waiting}</span>` +
      `<span class="num ${q.waiting ? waitBand(lw, q.sl_threshold_s) : ""}" data-field="longest_wait">${q.waiting ? I.dur(lw) : "\u2013"}</span>` +
      `<span class="num ${band(r.service_level, q.sl_target)}" data-field="service_level">${pct(r.service_level)}</span>` +
      `<span class="num">${pct(q.sl_target)}</span>` +
      `<span class="num">${a.available}</span><span class="num">${a.on_call}</span><span class="num">${a.logged_in}</span>` +
      `<span class="num" data-field="today.offered">${I.num(today.offered)}</span>` +
      `<span class="num">${pct(today.offered ? today.answered / today.offered : null)}</span>` +
      `<span class="num">${pct(today.abandon_rate)}</span>` +
      `<span class="num">${I.secs(r.asa_s)}</span>` +
      `<span data-field="stage">${stage}</span>`;
  }

  // The pool: one element per visible slot, reused as the list scrolls.
  const pool = [];
  function render() {
    frame = 0;
    const t0 = performance.now();
    if (orderDirty) {
      order = [...queues.values()].sort(compare).map((q) => q.queue);
      orderDirty = false;
    }
    const vp = $("viewport"), box = $("rows");
    box.style.height = order.length * ROW_H + "px";
    const first = Math.max(0, Math.floor(vp.scrollTop / ROW_H) - OVERSCAN);
    const last = Math.min(order.length, Math.ceil((vp.scrollTop + vp.clientHeight) / ROW_H) + OVERSCAN);
    const need = last - first;
    while (pool.length < need) { const el = document.createElement("div"); el.setAttribute("role", "row"); box.appendChild(el); pool.push(el); }
    for (let i = 0; i < pool.length; i++) {
      const el = pool[i];
      if (i >= need) { if (!el.hidden) el.hidden = true; continue; }
      const q = queues.get(order[first + i]);
      const html = rowHtml(q);
      const cls = "row" + (breach(q) ? " breach" : "");
      if (el.hidden) el.hidden = false;
      if (el.className !== cls) el.className = cls;
      const top = (first + i) * ROW_H + "px";
      if (el.style.top !== top) el.style.top = top;
      if (el.dataset.queue !== q.queue) el.dataset.queue = q.queue;
      if (el._html !== html) { el.innerHTML = html; el._html = html; }
    }
    let nb = 0;
    for (const q of queues.values()) if (breach(q)) nb++;
    $("summary").textContent = T("table.count", { n: I.num(queues.size), breach: I.num(nb) });
    const end = performance.now();
    if (pending.length) {
      stats.workMs.push(end - t0 + pending.reduce((s, p) => s + p.apply, 0));
      for (const p of pending) stats.toScreenMs.push(end - p.at);
      pending = [];
      if (stats.workMs.length > 5000) { stats.workMs.splice(0, 1000); stats.toScreenMs.splice(0, 1000); }
    }
  }
  function schedule() { if (!frame) frame = requestAnimationFrame(render); }

  function onMessage(ev) {
    const at = performance.now();
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    lastMsg = Date.now();
    if (typeof m.seq === "number") seq = m.seq;
    if (m.now) { const t = ms(m.now); if (t != null) skewMs = t - Date.now(); }
    if (m.type === "snapshot") {
      queues.clear();
      for (const [id, q] of Object.entries(m.queues || {})) queues.set(id, q);
      orderDirty = true;
    } else if (m.type === "delta") {
      const qs = Object.entries(m.queues || {});
      if (!qs.length) return;
      for (const [id, p] of qs) {
        if (p === null) queues.delete(id); else queues.set(id, mergePatch(queues.get(id), p));
      }
      orderDirty = true;
      stats.deltas++;
      pending.push({ at: at, apply: performance.now() - at });
    } else return;
    schedule();
  }

  function connect() {
    const u = new URL("/ws", location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    u.searchParams.set("v", "2");
    if (token) u.searchParams.set("token", token);
    if (filter) u.searchParams.set("queues", filter);
    if (seq != null) u.searchParams.set("since", String(seq));
    ws = new WebSocket(u.toString());
    ws.onopen = () => { connected = true; attempt = 0; lastMsg = Date.now(); status(); };
    ws.onmessage = onMessage;
    ws.onclose = () => {
      connected = false; ws = null;
      const base = Math.min(15000, 500 * Math.pow(2, attempt++));
      setTimeout(connect, base / 2 + Math.random() * base / 2);
      status();
    };
    ws.onerror = () => { try { ws && ws.close(); } catch (e) { /* closing anyway */ } };
  }

  function status() {
    const c = $("conn"), b = $("banner");
    let text = "";
    if (!connected) {
      c.className = "conn " + (lastMsg ? "lost" : "connecting");
      c.textContent = lastMsg ? T("conn.offline") : T("conn.connecting");
      if (lastMsg) text = T("banner.lost", { retry: T("banner.retry_now"), as_of: I.clock(new Date(lastMsg), true) });
    } else if (Date.now() - lastMsg > STALE_MS) {
      c.className = "conn stale"; c.textContent = T("conn.stale");
      text = T("banner.stale", { s: Math.round((Date.now() - lastMsg) / 1000), as_of: I.clock(new Date(lastMsg), true) });
    } else {
      c.className = "conn live"; c.textContent = T("conn.live");
    }
    b.hidden = !text;
    b.textContent = text;
  }

  // Waits grow with time: repaint the visible rows twice a second.
  function tick() {
    $("clock").textContent = I.clock(new Date(), true);
    status();
    schedule();
  }

  if (cfg.title) document.title = cfg.title;
  $("viewport").addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", schedule);
  window.acdmonTable = { queues, stats, get order() { return order; }, get seq() { return seq; },
    get connected() { return connected; } };
  connect();
  tick();
  setInterval(tick, 500);
})();
