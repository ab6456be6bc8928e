// acdmon wall: the post strip (A/B posts, `[[posts]]`). Kept apart from
// wall.js so the floor rules stay one file: it polls /api/v1/posts (posts
// change seldom; a breach shows within one poll) and ticks unmanned times
// locally between polls. Hidden when no post is configured.
"use strict";
(function () {
  const POLL_MS = 1000;
  // Texts from the wall's locale tables (src/publish/wall/locales/*.json,
  // keys `posts.*`), through i18n.js, which runs first.
  const I18N = window.acdmonI18n;
  const text = (k) => (I18N ? I18N.t("posts." + k) : k);
  const T = { a: text("a"), b: text("b"), grace: text("grace"), unmanned: text("unmanned"),
    off: text("off"), posts: text("heading"), since: text("since"), nobody: text("nobody") };
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  function dur(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const two = (n) => (n < 10 ? "0" : "") + n;
    return h > 0 ? h + ":" + two(m) + ":" + two(r) : m + ":" + two(r);
  }

  let posts = [];
  let fetchedAt = 0;   // local time of the last answer
  let asOfMs = 0;      // the board's event time of that answer

  function render() {
    const el = document.getElementById("posts");
    if (!el) return;
    el.hidden = posts.length === 0;
    const now = Date.now();
    el.innerHTML = `<h2>${esc(T.posts)}</h2>` + posts.map((p) => {
      let detail = "";
      if (p.cover === "a" || p.cover === "b") detail = (p.present || []).join(", ");
      else if (p.cover === "grace") detail = `${T.grace} ${dur((asOfMs - Date.parse(p.since)) / 1000 + (now - fetchedAt) / 1000)}`;
      else if (p.cover === "unmanned") detail = dur(p.unmanned_s + (now - fetchedAt) / 1000);
      return `<div class="post ${esc(p.cover)}" data-post="${esc(p.post)}">` +
        `<b>${esc(p.post)}</b> <span class="cover">${esc(T[p.cover] || p.cover)}</span>` +
        (detail ? ` <span class="detail">${esc(detail)}</span>` : "") + "</div>";
    }).join("");
  }

  function poll() {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    fetch("/api/v1/posts", { headers, cache: "no-store" })
      .then((r) => (r.ok ? r.json() : null))
      .then((j) => {
        if (!j) return;
        posts = j.posts || [];
        fetchedAt = Date.now();
        asOfMs = Date.parse(j.as_of) || fetchedAt;
        render();
      })
      .catch(() => { /* the connection banner covers a daemon that is gone */ });
  }

  // Test hook: what the strip shows.
  window.acdmonPosts = { get posts() { return posts; } };
  poll();
  setInterval(poll, POLL_MS);
  setInterval(render, 500);
})();
