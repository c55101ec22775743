// The resident simulator: sends through the real WeChat webhook, then shows every queued reply.
(function () {
  "use strict";
  var phone = document.querySelector(".phone");
  if (!phone) { return; }
  var chat = document.getElementById("sim-chat");
  var select = document.getElementById("sim-openid");
  var custom = document.getElementById("sim-custom");
  var customWrap = document.getElementById("sim-custom-wrap");
  var lastId = {};
  var seen = {};

  function openid() { return select.value || custom.value.trim(); }

  function bubble(side, text, label, extra) {
    var li = document.createElement("li");
    li.className = "msg " + side + (extra ? " " + extra : "");
    if (label) {
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = label;
      li.appendChild(who);
    }
    var body = document.createElement("span");
    body.className = "text";
    body.textContent = text;  // textContent: replies are shown as text, never as HTML
    li.appendChild(body);
    chat.appendChild(li);
    chat.scrollTop = chat.scrollHeight;
    return li;
  }

  function reset() {
    chat.innerHTML = "";
    seen = {};
    var id = openid();
    if (id) { lastId[id] = 0; }
    feed();
  }

  function feed() {
    var id = openid();
    if (!id) { return; }
    var after = lastId[id] > 0 ? lastId[id] : 0;
    window.linliGet(phone.dataset.feedUrl + "?openid=" + encodeURIComponent(id) + "&after=" + after)
      .then(function (r) { return r.json(); })
      .then(function (data) {
        data.messages.forEach(function (m) {
          lastId[id] = Math.max(lastId[id] || 0, m.id);
          var key = id + ":" + m.id;
          var status = m.status === "sent" || m.status === "delivered" ? "已送达" : (m.status === "failed" || m.status === "undeliverable" ? "发送失败" : "待发送");
          if (seen[key]) { seen[key].dataset.status = m.status; return; }
          seen[key] = bubble("left", m.body, m.from + " · " + status, "outbox kind-" + m.kind);
          seen[key].dataset.status = m.status;
          seen[key].dataset.outboxId = String(m.id);
        });
      }).catch(function () {});
  }

  // Re-read recent rows too, so a "待发送" bubble turns into "已送达" once delivered.
  function refresh() {
    var id = openid();
    if (!id) { return; }
    var pendingIds = Object.keys(seen).filter(function (k) { return seen[k].dataset.status === "pending" || seen[k].dataset.status === "sending"; });
    if (pendingIds.length) {
      var first = Math.min.apply(null, pendingIds.map(function (k) { return parseInt(k.split(":").pop(), 10); }));
      window.linliGet(phone.dataset.feedUrl + "?openid=" + encodeURIComponent(id) + "&after=" + (first - 1))
        .then(function (r) { return r.json(); }).then(function (data) {
          data.messages.forEach(function (m) {
            var node = seen[id + ":" + m.id];
            if (node && node.dataset.status !== m.status) {
              node.dataset.status = m.status;
              node.querySelector(".who").textContent = m.from + " · " + (m.status === "sent" || m.status === "delivered" ? "已送达" : m.status);
            }
          });
        }).catch(function () {});
    }
    feed();
  }

  select.addEventListener("change", function () {
    customWrap.hidden = !!select.value;
    reset();
  });
  custom.addEventListener("change", reset);

  document.getElementById("sim-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var input = document.getElementById("sim-text");
    var text = input.value.trim();
    var id = openid();
    if (!text || !id) { return; }
    bubble("right", text, "我");
    input.value = "";
    fetch(phone.dataset.sendUrl, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": window.linliCsrf(), "X-Requested-With": "fetch",
                "Accept": "application/json"},
      body: JSON.stringify({openid: id, text: text})
    }).then(function (r) { return r.json().then(function (data) { return {ok: r.ok, data: data}; }); })
      .then(function (res) {
        if (!res.ok) { bubble("left", (res.data.error && res.data.error.message) || "发送失败", "系统", "error"); return; }
        if (res.data.reply) { bubble("left", res.data.reply, "自动回复", "passive"); }
        feed();
      }).catch(function () { bubble("left", "网络错误，请重试", "系统", "error"); });
  });

  reset();
  setInterval(refresh, 2000);
})();
