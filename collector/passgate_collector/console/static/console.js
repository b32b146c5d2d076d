// The live feed: poll feed.json?after=<cursor> and put new scans at the top of the table.
// Progressive enhancement: without this script the page shows the same table and reloads
// itself once a minute (<noscript> refresh). Rows are built with textContent (no HTML from
// the server is inserted), and a failed poll only says so and tries again.
(function () {
  "use strict";
  var me = document.getElementById("console-js");
  var table = document.getElementById("feed");
  var state = document.getElementById("live-state");
  if (!me || !table) { return; }
  var url = me.getAttribute("data-feed");
  var cursor = me.getAttribute("data-cursor") || "";
  var MAX_ROWS = 200, EVERY_MS = 4000;
  // Words come from the page, in its language: the column names from the table's head (the
  // narrow layout shows them beside each cell), the state lines from the script's attributes.
  var heads = table.tHead ? table.tHead.rows[0].cells : [];
  var LIVE = me.getAttribute("data-live") || "live, checked {time}";
  var PAUSED = me.getAttribute("data-paused") || "live updates paused ({error}), retrying";
  var col = 0;

  function cell(label, text, cls) {
    var td = document.createElement("td");
    var head = heads[col++];
    td.setAttribute("data-label", head ? head.textContent : label);
    if (cls) { td.className = cls; }
    td.textContent = text;
    return td;
  }

  function addRow(r) {
    var tr = document.createElement("tr");
    tr.className = "scan new " + r.verdict;
    tr.setAttribute("data-cursor", r.cursor);
    col = 0;
    var when = cell("when", "");
    var t = document.createElement("time");
    t.setAttribute("datetime", r.time_utc);
    t.setAttribute("title", r.utc);
    t.textContent = r.local;
    when.appendChild(t);
    tr.appendChild(when);
    tr.appendChild(cell("checkpoint", r.checkpoint));
    tr.appendChild(cell("site", r.site || "-"));
    tr.appendChild(cell("zone", r.zone));
    tr.appendChild(cell("result", r.verdict_words, "verdict"));
    tr.appendChild(cell("reason", r.reason_words + (r.problem ? " " + r.problem : "")));
    tr.appendChild(cell("pass", r.pass));
    var body = table.tBodies[0];
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > MAX_ROWS) { body.deleteRow(body.rows.length - 1); }
  }

  function poll() {
    fetch(url + "?after=" + encodeURIComponent(cursor), {credentials: "same-origin"})
      .then(function (resp) {
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.json();
      })
      .then(function (data) {
        data.rows.forEach(addRow);
        cursor = data.cursor || cursor;
        state.textContent = LIVE.replace("{time}", new Date().toLocaleTimeString());
        state.className = "muted live-state ok";
      })
      .catch(function (err) {
        state.textContent = PAUSED.replace("{error}", err.message);
        state.className = "live-state warn";
      })
      .finally(function () { window.setTimeout(poll, EVERY_MS); });
  }
  window.setTimeout(poll, EVERY_MS);
}());
