// Help board: re-fetch the alert cards every few seconds; keep the page as it is while staff type.
(function () {
  var box = document.getElementById("help-alerts");
  if (!box) { return; }
  var baseTitle = document.title;
  function busy() {
    var el = document.activeElement;
    return el && box.contains(el) && (el.tagName === "INPUT" || el.tagName === "SELECT");
  }
  function refresh() {
    if (busy()) { return; }
    fetch(box.dataset.url, {headers: {"X-Requested-With": "fetch"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null || busy()) { return; }
        box.innerHTML = html;  // server-rendered, escaped by Jinja
        var alarm = box.querySelector("[data-alarm='1']");
        document.title = alarm ? "【报警】" + baseTitle : baseTitle;
      })
      .catch(function () {});
  }
  setInterval(refresh, 3000);
})();
