// The shift handover on the wall: a banner during the last minutes of a
// shift and the first of the next (GET /api/v1/handovers/banner), the
// incoming supervisor's acknowledgement, and the duty-log box (admin).
// Kept apart from wall.js; it runs first, so it sees the tokens in the URL
// before wall.js removes the admin token from the address bar.
(() => {
  "use strict";
  const POLL_MS = 15000;
  // Texts from the wall's locale tables (src/publish/wall/locales/*.json,
  // keys `handover.*`), through i18n.js, which runs first.
  const I18N = window.acdmonI18n;
  const T = new Proxy({}, { get: (_, k) => (I18N ? I18N.t("handover." + String(k)) : String(k)) });
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const urlAdmin = params.get("admin") || "";
  const adminToken = () => sessionStorage.getItem("acdmon-admin") || urlAdmin;
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const hhmm = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  let last = null;

  function render(b) {
    last = b;
    const el = $("handover");
    if (!b || !b.phase) { el.hidden = true; el.innerHTML = ""; return; }
    el.hidden = false;
    el.style.cssText = "padding:.5rem 1.25rem;font-size:1.1rem;font-weight:600;" +
      (b.unresolved ? "background:var(--red,#c62828);color:#fff" : "background:var(--amber,#f9a825);color:#111");
    let html = "";
    if (b.phase === "before") {
      html = `${esc(T.before)} ${hhmm(b.shift.end)} (${esc(b.shift.shift)})`;
    } else {
      html = `${esc(T.after)} ${esc(b.shift.shift)} ${esc(b.shift.day)}: `;
      const h = b.handover;
      if (!h) {
        html += esc(T.written);
      } else {
        html += h.queues.map((q) => `${esc(q.queue)} ${esc(T.offered)} ${q.offered}, ${esc(T.sl)} ${q.service_level == null ? "—" : (q.service_level * 100).toFixed(1) + "%"}`).join("; ");
        html += ` · ${h.duty_log.length} ${esc(T.duty)}`;
        if (h.ack) html += ` · ${esc(T.acked)} ${esc(h.ack.by)} ${hhmm(h.ack.at)}`;
        else if (adminToken()) html += ` <button type="button" id="handover-ack" data-id="${h.id}">${esc(T.ack)}</button>`;
      }
    }
    if (b.unresolved) html += `<div>${esc(T.unresolved)}: ${b.reasons.map(esc).join("; ")}</div>`;
    el.innerHTML = html;
  }

  function poll() {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    fetch("/api/v1/handovers/banner", { headers, cache: "no-store" })
      .then((r) => (r.ok ? r.json() : null))
      .then(render)
      .catch(() => {});
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      headers: { Authorization: "Bearer " + adminToken(), "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  document.addEventListener("click", (ev) => {
    if (ev.target.id !== "handover-ack") return;
    const by = prompt(T.who, "");
    if (!by || !by.trim()) return;
    post(`/api/v1/handovers/${encodeURIComponent(ev.target.dataset.id)}/ack`, { by: by.trim() }).then(poll);
  });

  function setupDuty() {
    const form = $("duty");
    form.hidden = !adminToken();
    form.style.cssText = "position:fixed;right:1rem;bottom:1rem;display:flex;gap:.4rem;background:var(--panel,#222);padding:.4rem;border-radius:.4rem";
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = $("duty-text").value.trim(), by = $("duty-by").value.trim();
      if (!text || !by) return;
      post("/api/v1/duty-log", { text, by }).then((r) => {
        $("duty-note").textContent = r.ok ? T.added : T.failed;
        if (r.ok) $("duty-text").value = "";
      });
    });
    // The Admin button (wall.js) may set or clear the token later.
    setInterval(() => { form.hidden = !adminToken(); }, 2000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupDuty();
    poll();
    setInterval(poll, POLL_MS);
  });
  window.acdmonHandover = { get banner() { return last; }, poll };
})();
