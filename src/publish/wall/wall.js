// acdmon live wall. Plain JavaScript, no build step: it is served from the
// binary. State comes from /ws protocol version 2 (a snapshot, then deltas
// that carry only changed fields as JSON Merge Patches keyed by queue and
// agent id); waits and times in state are computed here from the server's
// clock (`now` in every message) and `oldest_since` / `since`. On a lost
// connection it reconnects with backoff and resumes with ?since=<last seq>.
"use strict";
(function () {
  const cfg = window.ACDMON_WALL || {};
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  // A named wall (/wall/{name}) brings its queues in the settings: a list,
  // or a pattern the server matches on every frame (a queue that appears
  // later arrives live, like any queue this page does not hold yet).
  const filter = params.get("queues") || (Array.isArray(cfg.queues) ? cfg.queues.join(",") : "");
  const pattern = !filter && typeof cfg.pattern === "string" ? cfg.pattern : "";
  let admin = params.get("admin") || sessionStorage.getItem("acdmon-admin") || "";
  const SL_AMBER = typeof cfg.sl_amber === "number" ? cfg.sl_amber : 0.05;
  const STALE_MS = (cfg.stale_after_s || 15) * 1000;

  const queues = new Map();   // name -> QueueView
  const agents = new Map();   // id -> AgentView
  let staleSites = new Map(); // site -> { since: ms | null } (central instance: the views' site_stale, over /ws)
  const entries = new Map();  // escalation entry id -> entry
  const trends = new Map();   // queue -> one-minute samples, oldest first (last hour)
  const TREND_MINUTES = 60;
  const dirty = new Set();    // queue names to re-render
  let agentsDirty = true;
  let seq = null;             // last seq received (for ?since=)
  let skewMs = 0;             // server event time minus local time
  let lastMsg = 0;            // local time of the last message
  let lastData = null;        // server time of the last snapshot/delta
  let ws = null;
  let attempt = 0;
  let retryAt = 0;
  let connected = false;
  let snapshots = 0;          // snapshots received (a resume brings none), for tests
  const adviceText = new Map(); // "entry/action" -> the advice as first written
  const notes = new Map();    // entry id -> note after approve/reject
  const fetchedEntries = new Set();

  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  // ---------- formatting (the tests compare these with /api/v1/queues) ----------
  // Texts and number/duration/clock formats of the page's locale (i18n.js).
  const I = window.acdmonI18n;
  const T = I.t, H = I.h, dur = I.dur, secs = I.secs;
  function pct(x) { return x == null ? "\u2013" : Math.round(x * 100) + "%"; }
  function slBand(sl, target) {
    if (sl == null) return "";
    if (sl >= target) return "green";
    if (sl >= target - SL_AMBER) return "amber";
    return "red";
  }
  function waitBand(w, threshold) {
    if (w <= threshold) return "green";
    if (w <= 2 * threshold) return "amber";
    return "red";
  }
  const WORSE = { "": 0, green: 1, amber: 2, red: 3 };
  const stateLabel = (st) => esc(I.state(st));

  function serverNow() { return Date.now() + skewMs; }
  function ms(ts) { const t = Date.parse(ts); return isNaN(t) ? null : t; }

  // Longest wait right now: from the oldest caller's join time on the
  // server's clock (skew-corrected).
  function longestWait(q) {
    if (!q.waiting) return 0;
    const since = q.oldest_since ? ms(q.oldest_since) : null;
    return since == null ? 0 : Math.max(0, (serverNow() - since) / 1000);
  }

  // RFC 7396: null removes a member, objects merge, anything else replaces.
  function mergePatch(target, patch) {
    if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
    const t = target !== null && typeof target === "object" && !Array.isArray(target) ? target : {};
    for (const k of Object.keys(patch)) {
      if (patch[k] === null) delete t[k]; else t[k] = mergePatch(t[k], patch[k]);
    }
    return t;
  }

  // ---------- rendering ----------
  function tileHtml(q) {
    const r = q.windows.rolling, today = q.windows.today;
    const lw = longestWait(q);
    const slB = slBand(r.service_level, q.sl_target);
    const wB = q.waiting ? waitBand(lw, q.sl_threshold_s) : "green";
    const band = WORSE[slB] >= WORSE[wB] ? (slB || wB) : wB;
    const a = q.agents;
    const e = q.escalation;
    const stage = e && e.stage > 0
      ? `<span class="stage s${e.stage}" data-field="stage" data-value="${e.stage}">${H("tile.stage", { n: e.stage, name: esc(e.stage_name) })}</span>`
      : `<span class="stage s0" data-field="stage" data-value="0">${H("tile.no_escalation")}</span>`;
    let escHtml = "";
    if (e && e.signed_in && e.signed_in.length) {
      const who = e.signed_in.map((id) => esc(agentName(id))).join(", ");
      escHtml = `<div class="esc">${H("tile.signed_in", { time: esc(clockOf(e.since)) })} <span class="who" data-field="signed_in">${who}</span></div>`;
    }
    let adviceHtml = "";
    for (const a of activeAdvice(q)) {
      adviceHtml += `<div class="esc" data-field="advice-in-force">${H("advice.in_force", { n: a.stage, name: esc(a.name) })} <span class="who">${esc(a.detail)}</span></div>`;
    }
    for (const id of (e && e.pending) || []) adviceHtml += adviceBlock(q.queue, id);
    const pill = (st, n) => `<span class="pill st-${st}">${stateLabel(st)} <b data-field="agents.${st}">${n}</b></span>`;
    const shown = q.site && q.queue.startsWith(q.site + "/") ? q.queue.slice(q.site.length + 1) : q.queue;
    const siteCls = q.site && staleSites.has(q.site) ? " site-stale" : "";
    return `<article class="tile band-${band}${siteCls}" data-queue="${esc(q.queue)}"${q.site ? ` data-site="${esc(q.site)}"` : ""}>
  <header><h2 title="${esc(q.queue)}">${esc(shown)}</h2>${stage}</header>
  <div class="figs">
    <div class="fig"><span class="v" data-field="waiting" data-value="${q.waiting}">${q.waiting}</span><label>${H("tile.waiting")}</label></div>
    <div class="fig"><span class="v ${wB}" data-field="longest_wait" data-tick="wait">${dur(lw)}</span><label>${H("tile.longest_wait")}</label></div>
    <div class="fig"><span class="v ${slB}" data-field="service_level" data-value="${r.service_level == null ? "" : r.service_level}">${pct(r.service_level)}</span><label>${H("tile.sl", { target: pct(q.sl_target), threshold: q.sl_threshold_s })}</label></div>
  </div>
  <div class="states">${pill("available", a.available)}${pill("ringing", a.ringing)}${pill("on_call", a.on_call)}${pill("wrap_up", a.wrap_up)}${pill("paused", a.paused)}<span class="pill">${H("state.logged_in")} <b data-field="agents.logged_in">${a.logged_in}</b></span></div>
  <div class="sub">${H("tile.rolling", { offered: `<b data-field="rolling.offered">${r.offered}</b>`, abandoned: `<b>${r.abandoned}</b>`, asa: `<b>${secs(r.asa_s)}</b>`, needed: `<b data-field="required_agents">${q.required_agents == null ? "\u2013" : q.required_agents}</b>` })}</div>
  <div class="sub">${H("tile.today", { offered: `<b data-field="today.offered">${today.offered}</b>`, answered: `<b>${today.answered}</b>`, abandoned: `<b>${today.abandoned}</b>`, sl: `<b data-field="today.service_level">${pct(today.service_level)}</b>`, answer_rate: `<b data-field="today.answer_rate">${pct(today.offered ? today.answered / today.offered : null)}</b>`, abandon_rate: `<b data-field="today.abandon_rate">${pct(today.abandon_rate)}</b>` })}</div>
  ${trendHtml(q)}
  ${escHtml}${adviceHtml}
</article>`;
  }

  // ---------- sparklines (last hour, one point a minute) ----------
  // Waiting (scaled to the hour's maximum) and SL (0-100 %, with the
  // queue's target as a dashed line); a vertical mark where the ladder's
  // stage went up (amber) or down (blue) between two minutes.
  const SW = 300, SH = 42;
  function spark(samples, value, max, field, target) {
    const n = samples.length;
    const x = (i) => n <= 1 ? SW : (i * SW) / (TREND_MINUTES - 1) + (TREND_MINUTES - n) * SW / (TREND_MINUTES - 1);
    const y = (v) => SH - 2 - (Math.min(v, max) / max) * (SH - 4);
    let d = "", pen = false;
    samples.forEach((s, i) => {
      const v = value(s);
      if (v == null) { pen = false; return; }
      d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
      pen = true;
    });
    let marks = "";
    for (let i = 1; i < n; i++) {
      const a = samples[i - 1].stage || 0, b = samples[i].stage || 0;
      if (a !== b) {
        marks += `<line class="stage-mark ${b > a ? "up" : "down"}" data-at="${esc(samples[i].at)}" x1="${x(i).toFixed(1)}" x2="${x(i).toFixed(1)}" y1="0" y2="${SH}"/>`;
      }
    }
    const t = target == null ? "" :
      `<line class="target" data-target="${target}" x1="0" x2="${SW}" y1="${y(target).toFixed(1)}" y2="${y(target).toFixed(1)}"/>`;
    return `<svg class="spark" data-field="${field}" data-points="${samples.filter((s) => value(s) != null).length}" viewBox="0 0 ${SW} ${SH}" preserveAspectRatio="none">${t}${marks}<path d="${d}"/></svg>`;
  }
  function trendHtml(q) {
    const samples = trends.get(q.queue) || [];
    if (!samples.length) return "";
    const maxW = Math.max(1, ...samples.map((s) => s.waiting));
    return `<div class="trend">
    <div><label>${H("trend.waiting", { max: maxW })}</label>${spark(samples, (s) => s.waiting, maxW, "spark-waiting", null)}</div>
    <div><label>${H("trend.sl", { target: pct(q.sl_target) })}</label>${spark(samples, (s) => s.service_level, 1, "spark-sl", q.sl_target)}</div>
  </div>`;
  }
  function addSample(queue, s) {
    let list = trends.get(queue);
    if (!list) { list = []; trends.set(queue, list); }
    if (list.length && list[list.length - 1].at >= s.at) return;
    list.push(s);
    if (list.length > TREND_MINUTES) list.splice(0, list.length - TREND_MINUTES);
  }

  // A new minute: queues whose sample the server left out continue their
  // last one (same figures; the longest wait grows while a caller waits),
  // counted in whole milliseconds exactly as the server does.
  function extendTrends(at) {
    const t = ms(at);
    for (const [id, list] of trends) {
      const last = list[list.length - 1];
      if (!last || last.at >= at) continue;
      const s = Object.assign({}, last, { at: at });
      if (last.waiting > 0) s.longest_wait_s = (Math.round(last.longest_wait_s * 1000) + (t - ms(last.at))) / 1000;
      addSample(id, s);
      dirty.add(id);
    }
  }

  // An entry is re-sent whenever one of its results changes; keep the
  // advice text as first seen (a later result could carry its own detail).
  function keepEntry(e) {
    (e.actions || []).forEach((x, i) => {
      const k = e.id + "/" + i;
      if (x.kind === "advise" && x.detail && !adviceText.has(k) && (x.result === "pending" || x.result === "ok")) {
        adviceText.set(k, x.detail);
      }
    });
    entries.set(e.id, e);
  }
  function adviceOf(e, i) {
    const x = e.actions[i];
    return adviceText.get(e.id + "/" + i) || x.detail;
  }

  // Advice of the stages in force (auto mode records it as done, advise
  // mode once approved): the latest entry of each active stage.
  function activeAdvice(q) {
    const e = q.escalation;
    if (!e || !e.stage) return [];
    const latest = new Map();
    for (const en of entries.values()) {
      if (en.queue !== q.queue || en.stage < 1 || en.stage > e.stage) continue;
      const cur = latest.get(en.stage);
      if (!cur || en.id > cur.id) latest.set(en.stage, en);
    }
    if (latest.size === 0) fetchEntries(q.queue);
    const out = [];
    for (const en of latest.values()) {
      if (en.direction !== "up") continue;
      (en.actions || []).forEach((x, i) => {
        if (x.kind === "advise" && x.detail && (x.result === "ok" || x.result === "approved")) {
          out.push({ stage: en.stage, name: en.stage_name, detail: adviceOf(en, i) });
        }
      });
    }
    return out.sort((a, b) => a.stage - b.stage);
  }

  // What a proposed step would do, in a supervisor's words.
  function describe(en) {
    const parts = [];
    const ins = [], outs = [];
    (en.actions || []).forEach((x, i) => {
      if (x.kind === "advise") parts.push(esc(adviceOf(en, i) || ""));
      else if (x.kind === "sign_in") ins.push(esc(agentName(x.agent)));
      else if (x.kind === "sign_out") outs.push(esc(agentName(x.agent)));
    });
    if (ins.length) parts.push(H("advice.sign_in", { who: ins.join(", ") }));
    if (outs.length) parts.push(H("advice.sign_out", { who: outs.join(", ") }));
    return parts.filter(Boolean).join("; ");
  }

  function adviceBlock(queue, id) {
    const en = entries.get(id);
    let text = H("advice.id", { id: id });
    if (en) {
      const what = describe(en);
      text = `${H("advice.stage", { n: en.stage, name: esc(en.stage_name) })}${en.direction === "down" ? H("advice.release") : ""}: ${what || esc(en.reason)}`;
      if (en.reason && what) text += ` <span class="note">(${esc(en.reason)})</span>`;
    } else {
      fetchEntries(queue);
    }
    const note = notes.get(id);
    const buttons = admin
      ? `<button class="approve" data-act="approve" data-id="${id}">${H("advice.approve")}</button><button class="reject" data-act="reject" data-id="${id}">${H("advice.reject")}</button>`
      : `<span class="note">${H("advice.admin_hint")}</span>`;
    return `<div class="advice" data-advice="${id}"><p>${text}</p>${buttons}${note ? ` <span class="note act-note">${esc(note)}</span>` : ""}</div>`;
  }

  function agentName(id) { const a = agents.get(id); return (a && a.name) || id; }
  function clockOf(ts) {
    const t = ms(ts); if (t == null) return "";
    return I.clock(new Date(t - skewMs), false);
  }

  function renderTiles() {
    const box = $("tiles");
    if (queues.size === 0) {
      box.innerHTML = `<div class="empty">${connected ? H("empty.no_queues") : H("empty.connecting")}</div>`;
      dirty.clear();
      return;
    }
    if (box.querySelector(".empty")) box.innerHTML = "";
    const names = [...queues.keys()].sort();
    for (const name of dirty) {
      const q = queues.get(name);
      if (!q) continue;
      const html = tileHtml(q);
      let el = box.querySelector(`article[data-queue="${CSS.escape(name)}"]`);
      const tmp = document.createElement("div");
      tmp.innerHTML = html;
      const fresh = tmp.firstElementChild;
      if (el) el.replaceWith(fresh); else box.appendChild(fresh);
    }
    dirty.clear();
    // Cluster mode: tiles grouped by site, each group under its site's
    // heading (STALE while the site's stream is silent, from /api/v1/sites).
    const sites = [...new Set([...queues.values()].map((q) => q.site).filter((x) => x))].sort();
    for (const el of [...box.querySelectorAll(".site-head")]) {
      if (!sites.includes(el.dataset.site)) el.remove();
    }
    for (const site of sites) {
      let el = box.querySelector(`.site-head[data-site="${CSS.escape(site)}"]`);
      if (!el) {
        el = document.createElement("h2");
        el.className = "site-head";
        el.dataset.site = site;
        box.appendChild(el);
      }
      el.classList.toggle("stale", staleSites.has(site));
      el.textContent = siteHeadText(site);
    }
    // Keep tiles in name order (by site first: a site's heading leads its tiles).
    const key = (el) => el.classList.contains("site-head")
      ? el.dataset.site + "\u0000"
      : (el.dataset.site || "") + "\u0001" + String(names.indexOf(el.dataset.queue)).padStart(8, "0");
    const els = [...box.children];
    const ordered = els.slice().sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    if (ordered.some((el, i) => el !== els[i])) ordered.forEach((el) => box.appendChild(el));
  }

  // Sites (central instance, docs/cluster.md): which are STALE now, from
  // the queues' views (`site_stale`, sent over /ws when it changes).
  function deriveStaleSites() {
    const next = new Map();
    for (const q of queues.values()) {
      if (!q.site || !q.site_stale) continue;
      const at = q.site_stale.last_message_at;
      next.set(q.site, { since: at != null ? ms(at) : null });
    }
    const changed = next.size !== staleSites.size || [...next.keys()].some((k) => !staleSites.has(k));
    staleSites = next;
    if (changed) for (const k of queues.keys()) dirty.add(k);
  }

  // A site's heading: its name, or while STALE for how long it is silent.
  function siteHeadText(site) {
    const stale = staleSites.get(site);
    if (!stale) return site;
    const s = stale.since == null ? "?" : Math.max(0, Math.round((serverNow() - stale.since) / 1000));
    return T("site.stale", { site: site, s: s });
  }

  const STATE_ORDER = { on_call: 0, ringing: 1, wrap_up: 2, available: 3, paused: 4, logged_out: 5 };
  function renderAgents() {
    agentsDirty = false;
    const list = [...agents.values()].filter((a) => !(filter || pattern) || a.queues.some((q) => queues.has(q)) || a.signed_in_by_escalation);
    list.sort((a, b) => (STATE_ORDER[a.state] - STATE_ORDER[b.state]) || agentName(a.agent).localeCompare(agentName(b.agent)));
    const counts = {};
    for (const a of list) counts[a.state] = (counts[a.state] || 0) + 1;
    $("agent-counts").textContent = Object.keys(STATE_ORDER).filter((s) => counts[s])
      .map((s) => `${I.state(s)} ${counts[s]}`).join(" \u00b7 ");
    $("agents").innerHTML = list.map((a) =>
      `<tr data-agent="${esc(a.agent)}" class="${a.signed_in_by_escalation ? "esc-in" : ""}${adherenceOut(a) ? " adh-out" : ""}"` +
      ` data-adherence="${a.adherence ? (a.adherence.in_adherence ? "in" : "out") : ""}" title="${esc(adherenceTitle(a))}">` +
      `<td title="${esc(a.agent)}">${esc(a.name || a.agent)}</td>` +
      `<td class="st-${a.state}" data-field="state">${stateLabel(a.state)}</td>` +
      `<td>${esc(I.reason(a.reason) || (a.paused_in && a.paused_in.length ? T("agents.paused_in", { queues: a.paused_in.join(", ") }) : ""))}</td>` +
      `<td class="num" data-tick="since" data-since="${esc(a.since)}">${dur((serverNow() - ms(a.since)) / 1000)}</td>` +
      `<td>${esc(a.queues.join(", "))}</td></tr>`).join("");
  }

  // Schedule adherence ([adherence], docs/floor.md): a red mark on the
  // agent's row once it is out past its activity's tolerance.
  const I18N = window.acdmonI18n;
  const ADHERENCE_TEXT = new Proxy({}, { get: (_, k) => (I18N ? I18N.t("adherence." + String(k)) : String(k)) });
  function adherenceOut(a) { return !!(a.adherence && !a.adherence.in_adherence); }
  function adherenceTitle(a) {
    const m = a.adherence;
    if (!m) return "";
    let t = `${ADHERENCE_TEXT.planned}: ${m.scheduled}`;
    if (!m.in_adherence) t += ` · ${ADHERENCE_TEXT.out} ${new Date(ms(m.out_since)).toLocaleTimeString()} · ${ADHERENCE_TEXT.why}: ${m.why}`;
    if (m.exception) t += ` · ${ADHERENCE_TEXT.exception}: ${m.exception}`;
    return t;
  }

  function renderSummary() {
    let waiting = 0, avail = 0, logged = 0;
    for (const q of queues.values()) { waiting += q.waiting; }
    for (const a of agents.values()) {
      if (a.state !== "logged_out") logged++;
      if (a.state === "available") avail++;
    }
    let lacks = "";
    if (staleSites.size) lacks = ` <span class="lacks" data-field="lacks">${H("summary.lacks", { sites: esc([...staleSites.keys()].sort().join(", ")) })}</span>`;
    $("summary").innerHTML = H("summary", { waiting: `<b data-field="total-waiting">${waiting}</b>`, available: `<b>${avail}</b>`, logged_in: `<b>${logged}</b>`, queues: I.num(queues.size) }) + lacks;
  }

  // Between messages: advance waits and times in state, the clock, the banner.
  function tick() {
    $("clock").textContent = I.clock(new Date(), true);
    for (const el of document.querySelectorAll('[data-tick="wait"]')) {
      const tile = el.closest("article");
      const q = tile && queues.get(tile.dataset.queue);
      if (!q) continue;
      const lw = longestWait(q);
      el.textContent = dur(lw);
      el.className = "v " + (q.waiting ? waitBand(lw, q.sl_threshold_s) : "green");
    }
    for (const el of document.querySelectorAll('[data-tick="since"]')) {
      el.textContent = dur((serverNow() - ms(el.dataset.since)) / 1000);
    }
    for (const el of document.querySelectorAll(".site-head.stale")) el.textContent = siteHeadText(el.dataset.site);
    updateBanner();
  }

  // The daemon's own health: /readyz (open, same origin) is polled, so the
  // banner shows the very reasons operators see, and keeps working while
  // the engine is stuck and /ws is silent (docs/publishing.md).
  let notReady = [];
  const READY_POLL_MS = 3000;
  function pollReady() {
    fetch("/readyz", { cache: "no-store" })
      .then((r) => r.json())
      .then((j) => {
        notReady = j.ready ? [] : (j.not_ready || (j.reasons || []).map((d) => ({ kind: "unknown", detail: String(d) })));
        updateBanner();
      })
      .catch(() => { /* the connection banner covers a daemon that is gone */ });
  }

  function updateBanner() {
    const b = $("banner"), c = $("conn");
    const asOf = lastData != null ? I.clock(new Date(lastData - skewMs), true) : T("banner.never");
    let text = "", cls = "";
    if (!connected) {
      const wait = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      text = T("banner.lost", { retry: wait ? T("banner.retry_in", { s: wait }) : T("banner.retry_now"), as_of: asOf });
      cls = "lost";
      c.className = "conn " + (lastMsg ? "lost" : "connecting");
      c.textContent = lastMsg ? T("conn.offline") : T("conn.connecting");
    } else if (Date.now() - lastMsg > STALE_MS) {
      text = T("banner.stale", { s: Math.round((Date.now() - lastMsg) / 1000), as_of: asOf });
      cls = "stale";
      c.className = "conn stale"; c.textContent = T("conn.stale");
    } else {
      c.className = "conn live"; c.textContent = T("conn.live");
    }
    if (!text && notReady.length) {
      // The daemon says it is not ready (engine stalled, a source down...):
      // the figures may be wrong even though the connection is live.
      text = T("banner.not_ready", { reasons: notReady.map((r) => r.detail).join(" · ") });
      cls = "health";
    }
    if (text && !(lastMsg === 0 && !connected && attempt === 0)) {
      b.hidden = false; b.className = cls; b.textContent = text;
    } else {
      b.hidden = true;
    }
  }

  let frame = 0;
  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      renderTiles();
      if (agentsDirty) renderAgents();
      renderSummary();
    });
  }

  // ---------- protocol ----------
  function onMessage(ev) {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    lastMsg = Date.now();
    if (typeof m.seq === "number") seq = m.seq;
    if (m.now) { const t = ms(m.now); if (t != null) { skewMs = t - Date.now(); if (m.type !== "heartbeat") lastData = t; } }
    if (m.type === "snapshot") {
      snapshots++;
      queues.clear(); agents.clear(); fetchedEntries.clear();
      $("tiles").innerHTML = "";
      for (const [id, q] of Object.entries(m.queues || {})) { queues.set(id, q); dirty.add(id); }
      for (const [id, a] of Object.entries(m.agents || {})) agents.set(id, a);
      trends.clear();
      for (const [id, list] of Object.entries(m.trends || {})) for (const s of list) addSample(id, s);
      agentsDirty = true;
    } else if (m.type === "delta") {
      for (const [id, p] of Object.entries(m.queues || {})) {
        if (p === null) { queues.delete(id); $("tiles").innerHTML = ""; for (const k of queues.keys()) dirty.add(k); }
        else { queues.set(id, mergePatch(queues.get(id), p)); dirty.add(id); }
      }
      for (const [id, s] of Object.entries(m.trend || {})) { addSample(id, s); dirty.add(id); }
      if (m.trend_at) extendTrends(m.trend_at);
      const changedAgents = Object.entries(m.agents || {});
      for (const [id, p] of changedAgents) {
        if (p === null) agents.delete(id); else agents.set(id, mergePatch(agents.get(id), p));
      }
      if (changedAgents.length) {
        agentsDirty = true;
        // Names of signed-in agents appear on tiles.
        for (const q of queues.values()) if (q.escalation && q.escalation.signed_in.length) dirty.add(q.queue);
      }
      for (const e of m.escalations || []) {
        keepEntry(e);
        if (queues.has(e.queue)) dirty.add(e.queue);
      }
    }
    deriveStaleSites();
    schedule();
  }

  function connect() {
    const u = new URL("/ws", location.href);
    u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    u.searchParams.set("v", "2");
    if (token) u.searchParams.set("token", token);
    if (filter) u.searchParams.set("queues", filter);
    else if (pattern) u.searchParams.set("pattern", pattern);
    if (seq != null) u.searchParams.set("since", String(seq));
    ws = new WebSocket(u.toString());
    ws.onopen = () => { connected = true; attempt = 0; lastMsg = Date.now(); updateBanner(); };
    ws.onmessage = onMessage;
    ws.onclose = () => {
      const was = connected;
      connected = false; ws = null;
      // Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... 15 s.
      const base = Math.min(15000, 500 * Math.pow(2, attempt));
      attempt++;
      const delay = was ? 250 : base / 2 + Math.random() * base / 2;
      retryAt = Date.now() + delay;
      setTimeout(connect, delay);
      updateBanner();
      schedule();
    };
    ws.onerror = () => { try { ws && ws.close(); } catch (e) { /* closing anyway */ } };
  }

  // Details of pending advice that arrived before this page connected.
  function fetchEntries(queue) {
    if (fetchedEntries.has(queue)) return;
    fetchedEntries.add(queue);
    const headers = token ? { Authorization: "Bearer " + token } : {};
    fetch("/api/v1/escalations?limit=200&queue=" + encodeURIComponent(queue), { headers })
      .then((r) => (r.ok ? r.json() : []))
      .then((list) => {
        for (const e of Array.isArray(list) ? list : list.entries || []) keepEntry(e);
        dirty.add(queue); schedule();
      })
      .catch(() => {});
  }

  function act(id, verb) {
    notes.set(id, verb === "approve" ? T("advice.approving") : T("advice.rejecting"));
    for (const q of queues.values()) if (q.escalation && (q.escalation.pending || []).includes(id)) dirty.add(q.queue);
    schedule();
    fetch(`/api/v1/escalations/${encodeURIComponent(id)}/${verb}`, {
      method: "POST", headers: { Authorization: "Bearer " + admin, "Content-Type": "application/json" }, body: "{}",
    }).then((r) => r.text().then((t) => {
      notes.set(id, r.ok ? (verb === "approve" ? T("advice.approved") : T("advice.rejected")) : T("advice.failed", { status: r.status, detail: t.slice(0, 120) }));
    })).catch((e) => notes.set(id, T("advice.failed", { status: "-", detail: String(e) })))
      .finally(() => {
        for (const q of queues.values()) dirty.add(q.queue);
        schedule();
      });
  }

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-act]");
    if (b) { act(Number(b.dataset.id), b.dataset.act); return; }
    if (ev.target.id === "admin") {
      const t = prompt(T("admin.prompt"), admin ? "\u2022\u2022\u2022\u2022" : "");
      if (t === null) return;
      if (t !== "\u2022\u2022\u2022\u2022") admin = t.trim();
      if (admin) sessionStorage.setItem("acdmon-admin", admin); else sessionStorage.removeItem("acdmon-admin");
      $("admin").classList.toggle("on", !!admin);
      for (const q of queues.keys()) dirty.add(q);
      schedule();
    }
  });

  if (cfg.title) document.title = cfg.title;
  if (admin) {
    sessionStorage.setItem("acdmon-admin", admin);
    $("admin").classList.add("on");
  }
  // Do not keep tokens in the address bar (screenshots, shoulder surfing).
  if (params.has("admin")) {
    params.delete("admin");
    history.replaceState(null, "", location.pathname + (params.toString() ? "?" + params : ""));
  }
  // Test hook: the numbers the wall shows, for headless checks.
  window.acdmonWall = { queues, agents, trends, get seq() { return seq; }, get connected() { return connected; },
    get snapshots() { return snapshots; }, get notReady() { return notReady; } };
  renderTiles();

  connect();
  tick();
  setInterval(tick, 500);
  pollReady();
  setInterval(pollReady, READY_POLL_MS);
})();
