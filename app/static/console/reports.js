// Reports page: fetches each report's JSON and draws it with ECharts (vendored, no CDN).
// Served as a file because the console's CSP forbids inline scripts; all text from the server is
// inserted with textContent, never as HTML, since residents wrote some of it.
(function () {
  "use strict";

  var CHANNELS = { wechat: "微信", sms: "短信", console: "工作台/其他" };
  var SOURCES = { device: "呼叫器", wechat_menu: "微信菜单", bot: "机器人", console: "工作台", api: "接口" };
  var STATUS = { open: "处理中", pending: "等待居民", resolved: "已解决", closed: "已关闭",
                 escalating: "呼叫中", accepted: "已接单", cancelled: "已取消" };
  var PRIORITY = { low: "低", normal: "普通", high: "高", urgent: "紧急" };
  var charts = [];

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }
  function mins(s) { return s === null || s === undefined ? null : Math.round(s / 6) / 10; }
  function shTime(iso) {
    return new Date(iso).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });
  }

  function chart(section, key, option) {
    var box = section.querySelector('[data-chart="' + key + '"]');
    if (!box) return;
    // Sizes are set here, not in a style attribute, which the CSP would refuse.
    box.style.height = "300px";
    box.style.flex = "1 1 420px";
    box.style.minWidth = "320px";
    var instance = echarts.init(box, null, { renderer: "canvas" });
    instance.setOption(Object.assign({ animation: false, tooltip: { trigger: "axis" },
      grid: { left: 48, right: 24, top: 48, bottom: 36, containLabel: true } }, option));
    charts.push(instance);
    box.setAttribute("data-drawn", "1");
  }

  function kpis(section, items) {
    var box = section.querySelector('[data-role="kpis"]');
    box.textContent = "";
    items.forEach(function (item) {
      var card = el("div", null, "kpi");
      card.appendChild(el("strong", item[1]));
      card.appendChild(el("span", " " + item[0] + "　", "hint"));
      box.appendChild(card);
    });
  }

  function rows(section, key, data, cells) {
    var body = section.querySelector('[data-table="' + key + '"] tbody');
    body.textContent = "";
    if (!data.length) {
      var tr = el("tr");
      var td = el("td", "无", "empty");
      td.colSpan = 8;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    data.forEach(function (item) {
      var tr = el("tr");
      cells(item).forEach(function (c) {
        var td = el("td");
        if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : c;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  // Long rows [{day, <key>, count}] -> one stacked series per key value, aligned on every day.
  function perDay(days, list, key, labels, stack) {
    var byKey = {};
    list.forEach(function (r) {
      var k = r[key];
      byKey[k] = byKey[k] || days.map(function () { return 0; });
      byKey[k][days.indexOf(r.day)] += r.count;
    });
    return Object.keys(byKey).map(function (k) {
      return { name: (labels[k] || k), type: "bar", stack: stack, data: byKey[k] };
    });
  }

  function totalsBy(list, key, labels) {
    var sums = {};
    list.forEach(function (r) { sums[r[key]] = (sums[r[key]] || 0) + r.count; });
    return Object.keys(sums).map(function (k) { return { name: labels[k] || k, value: sums[k] }; });
  }

  var draw = {
    volume: function (s, d) {
      kpis(s, [["会话（人·天）", d.totals.conversations], ["工单", d.totals.tickets], ["一键求助", d.totals.help_alerts]]);
      var conv = perDay(d.days, d.conversations, "channel", CHANNELS, "会话")
        .map(function (x) { x.name = "会话·" + x.name; return x; });
      var tickets = perDay(d.days, d.tickets, "category", d.category_labels, "工单")
        .map(function (x) { x.name = "工单·" + x.name; return x; });
      var alerts = perDay(d.days, d.help_alerts, "source", SOURCES, "求助")
        .map(function (x) { x.name = "求助·" + x.name; return x; });
      chart(s, "volume-daily", { title: { text: "每日业务量", textStyle: { fontSize: 14 } },
        legend: { type: "scroll", top: 22 }, grid: { top: 70, left: 40, right: 24, bottom: 30, containLabel: true },
        xAxis: { type: "category", data: d.days }, yAxis: { type: "value", minInterval: 1 },
        series: conv.concat(tickets, alerts) });
      chart(s, "volume-channels", { title: { text: "工单渠道", textStyle: { fontSize: 14 } }, tooltip: { trigger: "item" },
        series: [{ type: "pie", radius: ["35%", "65%"], data: totalsBy(d.tickets, "channel", CHANNELS) }] });
      chart(s, "volume-categories", { title: { text: "工单类别", textStyle: { fontSize: 14 } }, tooltip: { trigger: "item" },
        series: [{ type: "pie", radius: ["35%", "65%"], data: totalsBy(d.tickets, "category", d.category_labels) }] });
    },

    speed: function (s, d) {
      kpis(s, [["工单", d.tickets], ["超时工单", d.breached], ["SLA 达标率", pct(d.sla_compliance)]]);
      var labels = d.by_priority.map(function (p) { return p.label; });
      function timing(key, title) {
        chart(s, "speed-" + key, { title: { text: title + "（分钟）", textStyle: { fontSize: 14 } },
          legend: { top: 22 }, xAxis: { type: "category", data: labels }, yAxis: { type: "value" },
          series: [
            { name: "中位数", type: "bar", data: d.by_priority.map(function (p) { return mins(p[key === "first" ? "first_response" : "resolution"].p50); }) },
            { name: "P90", type: "bar", data: d.by_priority.map(function (p) { return mins(p[key === "first" ? "first_response" : "resolution"].p90); }) }
          ] });
      }
      timing("first", "首次响应用时");
      timing("resolution", "解决用时");
      chart(s, "speed-sla", { title: { text: "SLA 达标率（按优先级）", textStyle: { fontSize: 14 } },
        xAxis: { type: "category", data: labels }, yAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
        series: [{ name: "达标率", type: "bar", data: d.by_priority.map(function (p) {
          return p.sla_compliance === null ? null : Math.round(p.sla_compliance * 1000) / 10; }) }] });
      rows(s, "breaches", d.breaches, function (b) {
        var link = el("a", "#" + b.id + " " + b.subject);
        link.href = "/console/tickets/" + b.id;
        var which = [b.first_response_breached ? "首次响应" : "", b.resolution_breached ? "解决" : ""].filter(Boolean).join("、");
        return [link, PRIORITY[b.priority] || b.priority, d.category_labels[b.category] || b.category,
                STATUS[b.status] || b.status, which,
                b.assignee || "未分配", shTime(b.created_at)];
      });
    },

    outcome: function (s, d) {
      kpis(s, [["工单", d.tickets], ["解决率", pct(d.resolution_rate)], ["重开率", pct(d.reopen_rate)],
               ["平均评分", d.csat.average === null ? "—" : d.csat.average], ["满意率", pct(d.csat.satisfied)],
               ["评分回复率", pct(d.csat.response_rate)]]);
      chart(s, "outcome-csat", { title: { text: "评分分布", textStyle: { fontSize: 14 } },
        xAxis: { type: "category", data: d.csat.distribution.map(function (x) { return x.score + " 分"; }) },
        yAxis: { type: "value", minInterval: 1 },
        series: [{ name: "数量", type: "bar", data: d.csat.distribution.map(function (x) { return x.count; }) }] });
      chart(s, "outcome-trend", { title: { text: "评分趋势", textStyle: { fontSize: 14 } }, legend: { top: 22 },
        xAxis: { type: "category", data: d.trend.map(function (t) { return t.day; }) },
        yAxis: [{ type: "value", min: 1, max: 5, name: "平均分" }, { type: "value", minInterval: 1, name: "评分数" }],
        series: [{ name: "平均分", type: "line", data: d.trend.map(function (t) { return t.average; }) },
                 { name: "评分数", type: "bar", yAxisIndex: 1, data: d.trend.map(function (t) { return t.rated; }) }] });
    },

    bot: function (s, d) {
      kpis(s, [["会话（人·天）", d.conversations], ["独立完成率", pct(d.containment_rate)],
               ["转人工率", pct(d.handoff_rate)], ["未理解率", pct(d.fallback_rate)]]);
      chart(s, "bot-rates", { title: { text: "会话去向", textStyle: { fontSize: 14 } }, tooltip: { trigger: "item" },
        series: [{ type: "pie", radius: ["35%", "65%"], data: [
          { name: "机器人独立完成", value: d.contained },
          { name: "机器人转人工", value: d.handed_off },
          { name: "其他人工介入", value: d.escalated - d.handed_off }] }] });
      var faq = d.faq.slice().reverse();
      chart(s, "bot-faq", { title: { text: "常见问题使用次数（累计）", textStyle: { fontSize: 14 } },
        xAxis: { type: "value", minInterval: 1 }, yAxis: { type: "category", data: faq.map(function (f) { return f.title; }) },
        series: [{ name: "使用次数", type: "bar", data: faq.map(function (f) { return f.uses; }) }] });
      rows(s, "unanswered", d.unanswered, function (u) {
        return [u.question, u.count, u.examples.join(" / "), shTime(u.last_at)];
      });
    },

    help: function (s, d) {
      var wait = d.time_to_accept;
      kpis(s, [["求助", d.alerts], ["已接单", wait.n], ["接单用时中位数", wait.p50 === null ? "—" : mins(wait.p50) + " 分钟"],
               ["接单用时 P90", wait.p90 === null ? "—" : mins(wait.p90) + " 分钟"], ["走完整条呼叫链", d.whole_chain.count]]);
      chart(s, "help-accepted", { title: { text: "谁接的单", textStyle: { fontSize: 14 } }, tooltip: { trigger: "item" },
        series: [{ type: "pie", radius: ["35%", "65%"], data: d.accepted_by.map(function (a) { return { name: a.label, value: a.count }; }) }] });
      chart(s, "help-outcomes", { title: { text: "求助结果", textStyle: { fontSize: 14 } },
        xAxis: { type: "category", data: d.outcomes.map(function (o) { return o.label; }) }, yAxis: { type: "value", minInterval: 1 },
        series: [{ name: "次数", type: "bar", data: d.outcomes.map(function (o) { return o.count; }) }] });
      rows(s, "chain", d.whole_chain.alerts, function (a) {
        return [a.id, a.resident, shTime(a.created_at), a.round, a.alarm ? "是" : "", STATUS[a.status] || a.status];
      });
    },

    appointments: function (s, d) {
      var t = d.totals;
      kpis(s, [["预约", t.bookings], ["取消", t.cancelled], ["爽约", t.noshow], ["爽约率", pct(t.noshow_rate)]]);
      var names = d.departments.map(function (x) { return x.hospital + " " + x.department; });
      function series(name, key) { return { name: name, type: "bar", data: d.departments.map(function (x) { return x[key]; }) }; }
      chart(s, "appointments-departments", { title: { text: "各科室预约", textStyle: { fontSize: 14 } }, legend: { top: 22 },
        xAxis: { type: "category", data: names }, yAxis: { type: "value", minInterval: 1 },
        series: [series("预约", "bookings"), series("取消", "cancelled"), series("爽约", "noshow"), series("已就诊", "fulfilled")] });
    },

    departments: function (s, d) {
      function sum(key) { return d.departments.reduce(function (n, x) { return n + x[key]; }, 0); }
      kpis(s, [["派单", sum("dispatched")], ["按时办结", sum("on_time")], ["超时", sum("overdue")],
               ["回访重办", sum("reopened")]]);
      rows(s, "departments", d.departments, function (x) {
        return [x.name, x.dispatched, x.on_time, x.overdue, x.transferred, x.returned, x.reopened,
                x.followups_answered, x.solved, x.satisfaction === null ? "—" : x.satisfaction];
      });
    }
  };

  function load(section) {
    var name = section.getAttribute("data-report");
    fetch(section.getAttribute("data-url"), { headers: { "X-Requested-With": "fetch", Accept: "application/json" },
                                              credentials: "same-origin" })
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) throw new Error((body.error && body.error.message) || ("HTTP " + r.status));
          return body;
        });
      })
      .then(function (data) { draw[name](section, data); section.setAttribute("data-loaded", "1"); })
      .catch(function (err) {
        var box = section.querySelector('[data-role="kpis"]');
        box.textContent = "";
        box.appendChild(el("span", "加载失败：" + err.message, "flash error"));
        section.setAttribute("data-loaded", "error");
      });
  }

  document.querySelectorAll("section.report[data-report]").forEach(load);
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
