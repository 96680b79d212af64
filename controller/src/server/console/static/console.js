// plumb console: live updates. Events arrive over server-sent events; the page's live part
// (#live) is fetched again from the server (which escapes everything), and log tables get
// new entries added as text. No HTML from an event is ever parsed.
(function () {
  "use strict";
  const state = document.getElementById("live-state");
  const say = (text, cls) => {
    if (state) { state.textContent = text; state.className = "live " + cls; }
  };
  let timer = null;
  let refreshing = false;
  let again = false;

  async function refresh() {
    timer = null;
    const live = document.getElementById("live");
    if (!live) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("part", "live");
      const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (r.ok) {
        live.innerHTML = await r.text();
        document.body.dataset.updated = String(Date.now());
      }
    } catch (e) {
      say("offline", "off");
    } finally {
      refreshing = false;
      if (again) { again = false; schedule(); }
    }
  }

  function schedule() {
    if (timer === null) timer = setTimeout(refresh, 150);
  }

  // A full entry (for those who may read the log) joins the top of a live log table.
  function addEntry(e) {
    const table = document.getElementById("log");
    if (!table || e.id === undefined) return;
    const only = table.dataset.host;
    if (only !== undefined && only !== e.host) return;
    const tbody = table.tBodies[0];
    const row = document.createElement("tr");
    row.className = e.event;
    const cells = [String(e.id), e.at || ""];
    if (table.dataset.hostColumn) cells.push(e.host || "controller");
    cells.push(e.event, e.resource || "", e.attribute || "", e.expected || "", e.actual || "");
    let who = "-";
    if (e.who && typeof e.who === "object") {
      who = [e.who.process || e.who.user || "", e.who.origin ? "(" + e.who.origin + ")" : ""].join(" ").trim() || "-";
    }
    cells.push(who, e.authorised === true ? (e.change || "authorised") : e.authorised === false ? "unauthorised" : "-");
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      row.appendChild(td);
    }
    tbody.insertBefore(row, tbody.firstChild);
  }

  if (!window.EventSource) { say("no live updates", "off"); return; }
  const source = new EventSource("/events");
  source.onopen = () => say("live", "on");
  source.onerror = () => say("reconnecting", "off");
  source.onmessage = (m) => {
    let e = null;
    try { e = JSON.parse(m.data); } catch (_) { return; }
    addEntry(e);
    if (e.event !== "log_read" && e.event !== "content_read") schedule();
  };
  source.addEventListener("reload", () => window.location.reload());
  // A browser keeps few connections to one server over HTTP/1.1: give this one back as the
  // page goes, rather than when the browser gets round to it.
  window.addEventListener("pagehide", () => source.close());
})();
