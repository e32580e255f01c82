// Keeps a dashboard page live: polls the page's JSON twin (body[data-api]) every 2 seconds
// and redraws its figures, chart, buttons and tables; sends action buttons as POSTs with the
// bearer token typed into the token field (kept for this browser tab only).
"use strict";
(function () {
  var api = document.body.dataset.api;
  var live = document.getElementById("live");
  var message = document.getElementById("message");
  var tokenInput = document.getElementById("token");
  var TOKEN_KEY = "jobqueue-dashboard-token";

  if (tokenInput) {
    tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || "";
    tokenInput.addEventListener("input", function () {
      sessionStorage.setItem(TOKEN_KEY, tokenInput.value);
    });
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function button(c) {
    var b = el("button", c.text);
    b.type = "button";
    b.dataset.action = c.action;
    if (c.confirm) b.dataset.confirm = c.confirm;
    return b;
  }

  function cell(c) {
    var td = el("td", null, c.class);
    if (c.action) td.appendChild(button(c));
    else if (c.href) {
      var a = el("a", c.text);
      a.href = c.href;
      td.appendChild(a);
    } else td.textContent = c.text;
    return td;
  }

  function render(page) {
    var notice = document.getElementById("notice");
    notice.textContent = page.notice || "";
    notice.hidden = !page.notice;
    var stats = document.getElementById("stats");
    stats.replaceChildren.apply(stats, page.stats.map(function (s) {
      var d = el("div");
      var dd = el("dd", s.href ? null : s.value);
      if (s.href) {
        var a = el("a", s.value);
        a.href = s.href;
        dd.append(a);
      }
      d.append(el("dt", s.label), dd);
      return d;
    }));
    var actions = document.getElementById("actions");
    actions.replaceChildren.apply(actions, page.actions.map(button));
    var chart = document.getElementById("chart");
    // The chart is SVG the operator drew from numbers; it carries no text from users.
    if (chart && page.chart) chart.innerHTML = page.chart;
    page.tables.forEach(function (t) {
      var table = document.getElementById(t.id);
      if (!table) return;
      var body = table.tBodies[0];
      var rows = t.rows.map(function (r) {
        var tr = el("tr");
        tr.append.apply(tr, r.map(cell));
        return tr;
      });
      if (rows.length === 0) {
        var tr = el("tr", null, "empty");
        var td = el("td", t.empty);
        td.colSpan = t.headers.length;
        tr.append(td);
        rows = [tr];
      }
      body.replaceChildren.apply(body, rows);
    });
  }

  var busy = false;
  function refresh() {
    if (!api || busy || document.hidden) return;
    busy = true;
    fetch(api, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (page) {
        render(page);
        live.textContent = "live: updated " + new Date().toLocaleTimeString();
      })
      .catch(function (e) {
        live.textContent = "not updated: " + e.message;
      })
      .finally(function () { busy = false; });
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-action]");
    if (!b) return;
    if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
    var headers = {};
    if (tokenInput && tokenInput.value) headers.Authorization = "Bearer " + tokenInput.value;
    b.disabled = true;
    fetch(b.dataset.action, { method: "POST", headers: headers })
      .then(function (r) {
        return r.json().catch(function () { return { message: r.statusText }; })
          .then(function (body) { return { ok: r.ok, text: body.message }; });
      })
      .then(function (res) {
        message.textContent = res.text;
        message.className = res.ok ? "ok" : "error";
        message.hidden = false;
        refresh();
      })
      .catch(function (err) {
        message.textContent = "the request failed: " + err.message;
        message.className = "error";
        message.hidden = false;
      })
      .finally(function () { b.disabled = false; });
  });

  if (api) setInterval(refresh, 2000);
})();
