// Live updates without reloading: elements with data-poll-url are refreshed every few seconds.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }
  window.linliCsrf = csrfToken;

  function get(url) {
    return fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}}).then(function (r) {
      if (r.status === 401) { window.location.reload(); throw new Error("login required"); }
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r;
    });
  }
  window.linliGet = get;

  function poll(el) {
    var seconds = parseFloat(el.dataset.pollSeconds || "5");
    var last = null;
    function once() {
      if (document.hidden) { return; }  // a background tab does not need fresh rows
      get(el.dataset.pollUrl).then(function (r) { return r.text(); }).then(function (html) {
        if (html === last) { return; }
        var atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - 40;
        if (last !== null) { el.innerHTML = html; }
        last = html;
        if (el.hasAttribute("data-scroll-end") && atEnd) { el.scrollTop = el.scrollHeight; }
        statusChanged(el);
      }).catch(function () { /* transient; the next round tries again */ });
    }
    once();
    setInterval(once, seconds * 1000);
  }

  // The controls of a ticket page depend on its status: reload when it changed, unless staff are typing.
  function statusChanged(el) {
    var grid = document.querySelector("[data-page-status]");
    var line = el.querySelector("[data-status]");
    if (!grid || !line || line.dataset.status === grid.dataset.pageStatus) { return; }
    var typing = Array.prototype.some.call(document.querySelectorAll("textarea"), function (t) { return t.value.trim(); });
    if (!typing) { window.location.reload(); }
  }

  function counts(main) {
    var url = main.dataset.countsUrl;
    if (!url) { return; }
    function once() {
      if (document.hidden) { return; }
      get(url).then(function (r) { return r.json(); }).then(function (data) {
        document.querySelectorAll("[data-count]").forEach(function (node) {
          var n = data[node.dataset.count];
          node.textContent = n ? String(n) : (node.classList.contains("count") ? "0" : "");
        });
      }).catch(function () {});
    }
    once();
    setInterval(once, 10000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll-url]").forEach(poll);
    var main = document.querySelector("main[data-counts-url]");
    if (main) { counts(main); }
    document.querySelectorAll("[data-canned-target]").forEach(function (select) {
      select.addEventListener("change", function () {
        var target = document.querySelector(select.dataset.cannedTarget);
        if (target && select.value) { target.value = select.value; target.focus(); }
        select.selectedIndex = 0;
      });
    });
    document.querySelectorAll(".timeline[data-scroll-end]").forEach(function (el) { el.scrollTop = el.scrollHeight; });
  });
})();
