// The sessions list refreshes its live cells (status, progress, duration, last activity,
// worker) every few seconds from a staff-only JSON endpoint, without reloading the page.
// One request at a time; paused while the tab is hidden; backs off when the server errs.
(function () {
  "use strict";
  var script = document.currentScript;
  var endpoint = script && script.dataset.endpoint;
  var INTERVAL_MS = 3000, MAX_BACKOFF_MS = 30000;
  var delay = INTERVAL_MS, busy = false;

  function cells() { return document.querySelectorAll(".live-cell[data-session]"); }

  function sessionIds() {
    var seen = {}, ids = [];
    cells().forEach(function (cell) {
      var id = cell.dataset.session;
      if (!seen[id] && ids.length < 200) { seen[id] = true; ids.push(id); }
    });
    return ids;
  }

  function apply(rows) {
    var byId = {};
    rows.forEach(function (row) { byId[row.id] = row; });
    cells().forEach(function (cell) {
      var row = byId[cell.dataset.session];
      if (!row) return;
      var value = row[cell.dataset.field];
      if (value !== undefined && cell.textContent !== String(value)) {
        cell.textContent = value;
        cell.classList.add("live-updated");
        setTimeout(function () { cell.classList.remove("live-updated"); }, 1200);
      }
    });
    document.body.dataset.liveRowsAt = String(Date.now());  // for tests: a refresh landed
  }

  function tick() {
    var ids = sessionIds();
    if (!endpoint || !ids.length || document.hidden || busy) { schedule(); return; }
    busy = true;
    fetch(endpoint + "?ids=" + encodeURIComponent(ids.join(",")), {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (body) { apply(body.rows || []); delay = INTERVAL_MS; })
      .catch(function () { delay = Math.min(delay * 2, MAX_BACKOFF_MS); })
      .then(function () { busy = false; schedule(); });
  }

  function schedule() { setTimeout(tick, delay); }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", schedule);
  else schedule();
})();
