"use strict";
// The reports page (served as /agent/reports.js: the page allows no inline script). Reads
// /api/reports with the console's session and draws it with Chart.js (served by orderline).
// Every value from the server goes into the page as text, never as markup.

const COLORS = { answered: "#2b8a3e", transferred: "#364fc7", abandoned_in_menu: "#e67700",
  abandoned_in_queue: "#c92a2a", ended_by_orderline: "#868e96" };
const OUTCOMES = [["answered", "answered by orderline"], ["transferred", "put through"],
  ["abandoned_in_menu", "hung up in the menu"], ["abandoned_in_queue", "hung up in the queue"],
  ["ended_by_orderline", "goodbye, not answered"]];
const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const charts = {};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

const percent = (r) => (r == null ? "–" : (r * 100).toFixed(1) + " %");
const ms = (v) => (v == null ? "–" : "≤ " + v + " ms");

function tiles(r) {
  const box = document.getElementById("tiles");
  box.replaceChildren();
  const t = r.totals, s = r.self_service;
  const list = [
    ["resolved-rate", percent(s.honest_rate), "resolved by orderline (no call back within " + s.repeat_window_hours + " h)", true],
    ["naive-rate", percent(s.naive_rate), "never reached a person (naive)", true],
    ["calls", String(t.calls), "calls"],
    ["answered", String(t.answered), "answered by orderline"],
    ["transferred", String(t.transferred), "put through to a person"],
    ["abandoned-menu", String(t.abandoned_in_menu), "hung up in the menu"],
    ["abandoned-queue", String(t.abandoned_in_queue), "hung up in the queue"],
    ["voicemails", String(t.voicemails), "left a voicemail"],
    ["callbacks", String(t.callbacks), "asked to be called back"],
    ["p50", ms(r.first_word.p50_ms_at_most), "first word, p50"],
    ["p95", ms(r.first_word.p95_ms_at_most), "first word, p95"],
    ["fresh", percent(r.freshness.fresh_rate), "lookups answered from fresh data"],
  ];
  for (const [id, value, label, key] of list) {
    box.append(el("div", { class: "tile" + (key ? " key" : ""), id: "tile-" + id },
      el("div", { class: "value", text: value }), el("div", { class: "label", text: label })));
  }
}

function draw(id, config) {
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
  charts[id] = new Chart(document.getElementById(id), config);
}

function bars(id, counts, color, horizontal) {
  draw(id, { type: "bar",
    data: { labels: counts.map((c) => c.label), datasets: [{ label: "calls", data: counts.map((c) => c.calls), backgroundColor: color }] },
    options: { indexAxis: horizontal ? "y" : "x", plugins: { legend: { display: false } } } });
}

function heat(r) {
  const table = document.getElementById("heat");
  table.replaceChildren();
  const max = Math.max(1, ...r.hour_of_week.flat());
  const head = el("tr", {}, el("th", {}));
  for (let h = 0; h < 24; h++) head.append(el("th", { text: String(h).padStart(2, "0") }));
  table.append(head);
  r.hour_of_week.forEach((hours, d) => {
    const row = el("tr", {}, el("th", { text: WEEKDAYS[d] }));
    hours.forEach((n, h) => {
      const cell = el("td", { text: n ? String(n) : "", title: WEEKDAYS[d] + " " + h + ":00 " + r.timezone + ": " + n + " calls" });
      const a = n / max;
      cell.style.backgroundColor = "rgba(54, 79, 199, " + (0.08 + 0.85 * a).toFixed(3) + ")";
      if (a > 0.5) cell.style.color = "#fff";
      row.append(cell);
    });
    table.append(row);
  });
}

function render(r) {
  document.getElementById("window").textContent = String(r.self_service.repeat_window_hours);
  document.getElementById("timezone").textContent = r.timezone;
  tiles(r);
  draw("per-day", { type: "bar",
    data: { labels: r.days.map((d) => d.day),
      datasets: OUTCOMES.map(([key, label]) => ({ label, data: r.days.map((d) => d[key]), backgroundColor: COLORS[key] })) },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } });
  heat(r);
  bars("drop-off", r.drop_off, "#e67700", true);
  bars("reasons", r.transfer_reasons, "#364fc7", true);
  bars("verification", r.verification, "#2b8a3e", false);
  bars("sources", r.sources, "#5f3dc4", false);
  bars("first-word", r.first_word.buckets, "#1098ad", false);
}

async function load() {
  const status = document.getElementById("status");
  const params = new URLSearchParams();
  const from = document.getElementById("from").value, to = document.getElementById("to").value;
  if (from) params.set("from", from);
  if (to) params.set("to", to);
  document.getElementById("csv").href = "/api/reports?" + params.toString() + (params.toString() ? "&" : "") + "format=csv";
  status.textContent = "loading…";
  const response = await fetch("/api/reports?" + params.toString(), { headers: { Accept: "application/json" } });
  if (!response.ok) {
    status.textContent = (await response.text()).trim();
    status.className = "down";
    return;
  }
  const report = await response.json();
  document.getElementById("from").value = report.from;
  document.getElementById("to").value = report.to;
  render(report);
  status.textContent = report.from + " – " + report.to;
  status.className = "live";
  document.body.dataset.loaded = "1";
}

document.getElementById("range").addEventListener("submit", (e) => { e.preventDefault(); load(); });
load();
