// relflow web UI: live updates without a framework. A release page listens to the release's
// server-sent events and swaps in a fresh HTML fragment of its body; the list polls its rows;
// log links open a pane that follows the log as it grows. Everything works without it too.
"use strict";
(function () {
  // Measurements the browser benchmark reads: one entry per swap after an event.
  const live = (window.relflowLive = { swaps: [], events: 0 });

  function swapInto(target, html) {
    // Keep what the person is doing: open <details> and a field being typed into.
    const open = new Set([...target.querySelectorAll("details[open][id]")].map((d) => d.id));
    target.innerHTML = html;
    open.forEach((id) => { const d = document.getElementById(id); if (d) d.open = true; });
  }

  function busyTyping(target) {
    const a = document.activeElement;
    return a && target.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
  }

  function followRelease(root) {
    const body = document.getElementById("release-body");
    let inFlight = false, again = false, pending = null;
    async function refresh(received) {
      if (inFlight) { again = true; pending = pending || received; return; }
      if (busyTyping(body)) { // try again once the field loses focus
        document.activeElement.addEventListener("blur", () => refresh(received), { once: true });
        return;
      }
      inFlight = true;
      try {
        const res = await fetch(root.dataset.fragment, { credentials: "same-origin", cache: "no-store" });
        if (res.ok) {
          swapInto(body, await res.text());
          live.swaps.push({ eventAt: received.eventAt, receivedAt: received.at, swappedAt: Date.now() });
          document.dispatchEvent(new CustomEvent("relflow:swapped"));
        }
      } catch (e) { /* the next event or poll tries again */ }
      inFlight = false;
      if (again) { again = false; const p = pending; pending = null; refresh(p); }
    }
    function onEvent(ev) {
      live.events += 1;
      let eventAt = null;
      try { const d = JSON.parse(ev.data); eventAt = Date.parse(d.ts || d.at || "") || null; } catch (e) { /* not JSON */ }
      refresh({ at: Date.now(), eventAt: eventAt });
    }
    const source = new EventSource(root.dataset.events, { withCredentials: true });
    source.onmessage = onEvent;
    // Named events (`event: task_status`, ...) do not reach onmessage: listen to the known kinds too.
    (root.dataset.eventKinds || "release task attempt decision action rollback event").split(" ")
      .forEach((kind) => source.addEventListener(kind, onEvent));
    source.onopen = () => refresh({ at: Date.now(), eventAt: null }); // catch up after a reconnect
  }

  function followList(table) {
    const rows = document.getElementById("release-rows");
    let etag = null; // the rows we have: unchanged rows come back as a bodiless 304
    setInterval(async () => {
      try {
        const headers = etag ? { "If-None-Match": etag } : {};
        const res = await fetch(table.dataset.poll, { credentials: "same-origin", cache: "no-store", headers });
        if (res.status === 200) {
          etag = res.headers.get("ETag");
          const html = await res.text();
          if (html !== rows.innerHTML) rows.innerHTML = html;
        }
      } catch (e) { /* next tick */ }
    }, 1000);
  }

  let logAbort = null;
  async function openLog(link) {
    const pane = document.getElementById("log-pane");
    const text = document.getElementById("log-text");
    if (!pane) return false;
    if (logAbort) logAbort.abort();
    logAbort = new AbortController();
    pane.hidden = false;
    document.getElementById("log-title").textContent = link.dataset.logTitle || "";
    text.textContent = "";
    const url = link.getAttribute("href") + (link.getAttribute("href").includes("?") ? "&" : "?") + "follow=1";
    try {
      const res = await fetch(url, { credentials: "same-origin", signal: logAbort.signal });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text.textContent += decoder.decode(value, { stream: true });
        text.scrollTop = text.scrollHeight;
      }
    } catch (e) { /* closed or replaced */ }
    return true;
  }

  document.addEventListener("click", (ev) => {
    const link = ev.target.closest && ev.target.closest("a.log-link");
    if (link && document.getElementById("log-pane")) { ev.preventDefault(); openLog(link); }
    if (ev.target.id === "log-close") {
      if (logAbort) logAbort.abort();
      document.getElementById("log-pane").hidden = true;
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById("release");
    if (root) followRelease(root);
    const table = document.getElementById("releases");
    if (table) followList(table);
  });
})();
