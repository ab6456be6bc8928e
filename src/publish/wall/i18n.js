// acdmon wall texts: one table per locale (src/publish/wall/locales/*.json,
// edited by translators without reading JavaScript). The daemon picks the
// locale ([server] wall_locale, ?lang=, or the browser's Accept-Language)
// and writes its table into the page as window.ACDMON_TEXT; this file turns
// keys into texts and formats numbers, durations and the clock for it.
// Static texts in index.html carry data-i18n="key" (data-i18n-title for a
// tooltip) and are filled in here.
"use strict";
(function () {
  const table = window.ACDMON_TEXT || {};
  const locale = table._locale || "en";
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const two = (n) => (n < 10 ? "0" : "") + n;

  function raw(key) { return Object.prototype.hasOwnProperty.call(table, key) ? String(table[key]) : key; }
  // Plain text: {name} replaced by vars.name as given.
  function t(key, vars) {
    return raw(key).replace(/\{(\w+)\}/g, (m, k) => (vars && k in vars ? String(vars[k]) : m));
  }
  // HTML: the table's text escaped, vars inserted as HTML (the caller's).
  function h(key, vars) {
    return esc(raw(key)).replace(/\{(\w+)\}/g, (m, k) => (vars && k in vars ? String(vars[k]) : m));
  }
  function num(n) { return n == null ? "\u2013" : new Intl.NumberFormat(locale).format(n); }
  function dur(s) {
    if (s == null || !isFinite(s)) return "\u2013";
    s = Math.max(0, Math.floor(s));
    const hh = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return hh > 0 ? t("dur.hms", { h: hh, mm: two(m), ss: two(r), m: m, s: r })
      : t("dur.ms", { m: m, ss: two(r), s: r });
  }
  function secs(x) { return x == null ? "\u2013" : t("secs", { s: Math.round(x * 10) / 10 }); }
  function clock(date, seconds) {
    const o = { hour: "2-digit", minute: "2-digit" };
    if (seconds) o.second = "2-digit";
    if (table._clock_24h) o.hourCycle = "h23";
    return date.toLocaleTimeString(locale, o);
  }
  function state(s) { return table["state." + s] != null ? table["state." + s] : s; }
  function reason(r) { return r && table["reason." + r] != null ? table["reason." + r] : r; }

  function fillStatic() {
    document.documentElement.lang = locale;
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fillStatic);
  else fillStatic();

  window.acdmonI18n = { locale, t, h, num, dur, secs, clock, state, reason };
})();
