"use strict";
// The agent console (served as /agent/console.js: the page allows no inline script).
// Every value from the server goes into the page as text (textContent), never as markup.
const calls = new Map();
const opened = new Set();

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

// Only http(s) addresses become links: never javascript:, data: or anything else.
function isWebLink(url) {
  try { return ["http:", "https:"].includes(new URL(url).protocol); } catch (_) { return false; }
}

function since(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
}

const STATES = { placed: "placed", paid: "paid, not yet shipped", being_prepared: "being prepared",
  shipped: "shipped", out_for_delivery: "out for delivery", delivered: "delivered", cancelled: "cancelled", refunded: "refunded" };

function card(c) {
  const name = c.customer ? [c.customer.first_name, c.customer.last_name].filter(Boolean).join(" ") : "Unknown caller";
  const isOpen = opened.has(c.call_sid);
  const node = el("div", { class: "card" + (c.transfer ? " transferred" : "") + (isOpen ? " open" : ""), "data-call-sid": c.call_sid });
  const time = c.in_progress ? since(c.started_at) : (c.duration_s != null ? c.duration_s + " s" : c.status);
  node.append(el("div", { class: "top" },
    el("div", {}, el("div", { class: "name", text: name }), el("div", { class: "number", text: isOpen ? c.from : c.from_masked })),
    el("div", { class: "timer", "data-started": c.started_at, "data-live": c.in_progress ? "1" : "", text: time })));
  const badges = el("div", { class: "badges" });
  if (c.verification && c.verification !== "failed") badges.append(el("span", { class: "badge verified", text: "verified: " + c.verification.replace("_", " ") }));
  else if (c.verification === "failed") badges.append(el("span", { class: "badge unverified", text: "verification failed" }));
  else badges.append(el("span", { class: "badge unverified", text: "not verified" }));
  if (c.bad_news) badges.append(el("span", { class: "badge bad-news", text: "bad news: " + c.bad_news.replaceAll("_", " ") }));
  if (c.transfer) badges.append(el("span", { class: "badge transfer", text: "to agent: " + c.transfer.replaceAll("_", " ") }));
  for (const m of (c.sms || [])) badges.append(el("span", { class: "badge " + (m.failed ? "unverified" : "verified"), text: (m.kind === "return_label" ? "label sms: " : "sms: ") + m.status + (m.error_code != null ? " (" + m.error_code + ")" : "") + ", to " + m.to }));
  if (c.source) badges.append(el("span", { class: "badge source", text: "data: " + c.source + (c.confirmed_at ? ", confirmed " + since(c.confirmed_at) + " ago" : "") }));
  node.append(badges);
  const orders = el("ul", { class: "orders" });
  for (const o of c.orders) {
    const li = el("li", { class: "order" }, el("b", { text: o.name }), document.createTextNode(" " + (STATES[o.state] || o.state) + " · " + o.day));
    if (o.carrier) li.append(document.createTextNode(" · " + o.carrier));
    if (o.tracking_url && isWebLink(o.tracking_url)) li.append(document.createTextNode(" "), el("a", { href: o.tracking_url, target: "_blank", rel: "noopener", text: "tracking" }));
    if (isOpen && o.admin_url) li.append(document.createTextNode(" "), el("a", { href: o.admin_url, target: "_blank", rel: "noopener", text: "admin" }));
    for (const r of (o.returns || [])) li.append(el("span", { class: "badge source", text: r }));
    orders.append(li);
  }
  if (!c.orders.length) orders.append(el("li", { class: "empty", text: c.customer ? "no orders" : "no customer matched" }));
  node.append(orders);
  const summary = el("ul", { class: "summary" });
  for (const line of (c.summary || [])) summary.append(el("li", { text: line }));
  node.append(summary);
  const keys = el("div", { class: "keys" }, el("span", { class: "small", text: "keys: " }));
  for (const k of c.keys) keys.append(el("kbd", { text: k }));
  if (!c.keys.length) keys.append(el("span", { class: "small", text: "none" }));
  node.append(keys);
  const details = el("div", { class: "details" });
  if (c.customer_admin_url) details.append(el("a", { href: c.customer_admin_url, target: "_blank", rel: "noopener", text: "Customer in Shopify admin" }));
  if (c.customer && c.customer.email) details.append(el("div", { class: "small", text: c.customer.email }));
  const path = el("ol", { class: "path" });
  for (const p of c.path) path.append(el("li", { text: p.kind + ": " + p.detail }));
  details.append(el("div", { class: "small", text: "Call " + c.call_sid + " · " + c.status }), path);
  node.append(details);
  node.addEventListener("click", (e) => {
    if (e.target.tagName === "A") return;
    if (opened.has(c.call_sid)) opened.delete(c.call_sid); else opened.add(c.call_sid);
    render();
  });
  return node;
}

function render() {
  const sorted = [...calls.values()].sort((a, b) => Date.parse(b.started_at) - Date.parse(a.started_at));
  const live = sorted.filter((c) => c.in_progress), recent = sorted.filter((c) => !c.in_progress).slice(0, 30);
  for (const [id, list] of [["live", live], ["recent", recent]]) {
    const box = document.getElementById(id);
    box.replaceChildren(...(list.length ? list.map(card) : [el("p", { class: "empty", text: id === "live" ? "No calls right now." : "No recent calls." })]));
  }
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/agent/feed");
  const status = document.getElementById("status");
  ws.onopen = () => { status.textContent = "live"; status.className = "live"; };
  ws.onmessage = (m) => {
    const event = JSON.parse(m.data);
    if (event.type === "snapshot") { calls.clear(); for (const c of event.calls) calls.set(c.call_sid, c); }
    else calls.set(event.call.call_sid, event.call);
    render();
    if (event.call && (event.call.voicemails || []).length) loadVoicemails();
    if (event.call && event.call.callback) loadCallbacks();
  };
  ws.onclose = () => { status.textContent = "reconnecting…"; status.className = "down"; setTimeout(connect, 1000); };
}

const REASONS = { closed: "line closed", asked: "chose voicemail", unanswered: "transfer not answered", queue_left: "left the queue" };

// One voicemail: who, why, what they heard, the transcription, the recording (played through
// orderline, which fetches it from Twilio), and the button that marks it handled.
function voicemailCard(v) {
  const node = el("div", { class: "card voicemail" + (v.handled_at ? " handled" : ""), "data-recording-sid": v.recording_sid });
  node.append(el("div", { class: "top" },
    el("div", {}, el("div", { class: "name", text: v.customer_name || "Unknown caller" }), el("div", { class: "number", text: v.from })),
    el("div", { class: "timer", text: v.duration_s + " s · " + since(v.created_at) + " ago" })));
  const badges = el("div", { class: "badges" });
  if (v.reason) badges.append(el("span", { class: "badge transfer", text: REASONS[v.reason] || v.reason }));
  if (v.verification && v.verification !== "failed") badges.append(el("span", { class: "badge verified", text: "verified: " + v.verification.replace("_", " ") }));
  else badges.append(el("span", { class: "badge unverified", text: "not verified" }));
  if (v.order_name) badges.append(el("span", { class: "badge source", text: "heard about " + v.order_name }));
  node.append(badges);
  const words = v.transcription ? "\u201c" + v.transcription + "\u201d" : (v.transcription_status === "failed" ? "Twilio could not transcribe this message." : "Transcription pending…");
  node.append(el("p", { class: "transcription", text: words }));
  node.append(el("audio", { controls: "", preload: "metadata", src: v.audio_url }));
  if (v.handled_at) {
    node.append(el("div", { class: "small", text: "Handled by " + v.handled_by + ", " + since(v.handled_at) + " ago" }));
  } else {
    const button = el("button", { type: "button", class: "handled", text: "Mark handled" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      const by = document.getElementById("agent-name").value;
      const r = await fetch("/api/voicemails/" + encodeURIComponent(v.recording_sid) + "/handled", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ by }) });
      if (r.ok) loadVoicemails(); else button.disabled = false;
    });
    node.append(button);
  }
  return node;
}

async function loadVoicemails() {
  try {
    const r = await fetch("/api/voicemails");
    if (!r.ok) return;
    const list = await r.json();
    const box = document.getElementById("voicemails");
    box.replaceChildren(...(list.length ? list.map(voicemailCard) : [el("p", { class: "empty", text: "No messages waiting." })]));
  } catch (_) { /* the next poll tries again */ }
}

const TRANSFER_WORDS = { asked: "asked for a person", order_not_found: "order not found", not_verified: "could not be verified",
  verification_locked: "too many wrong answers", no_input: "pressed nothing", invalid_key: "pressed a wrong key", fallback: "something failed" };
const CALLBACK_STATES = { requested: "waiting", calling: "calling now", retry: "not answered, will retry", connected: "called back", failed: "failed" };

// One call-back request: who, their place in line, where it stands, and the button that calls now.
function callbackCard(b) {
  const node = el("div", { class: "card callback " + b.status, "data-call-sid": b.call_sid });
  node.append(el("div", { class: "top" },
    el("div", {}, el("div", { class: "name", text: b.customer_name || "Unknown caller" }), el("div", { class: "number", text: b.to })),
    el("div", { class: "timer", text: "asked " + since(b.requested_at) + " ago" })));
  const badges = el("div", { class: "badges" });
  badges.append(el("span", { class: "badge " + (b.status === "failed" ? "unverified" : "transfer"), text: CALLBACK_STATES[b.status] || b.status }));
  if (b.position != null) badges.append(el("span", { class: "badge source", text: "place " + b.position + " in line" }));
  if (b.reason) badges.append(el("span", { class: "badge source", text: TRANSFER_WORDS[b.reason] || b.reason.replaceAll("_", " ") }));
  if (b.attempts) badges.append(el("span", { class: "badge source", text: b.attempts + " attempt" + (b.attempts > 1 ? "s" : "") }));
  if (b.language_name) badges.append(el("span", { class: "badge language", text: "speaks " + b.language_name }));
  node.append(badges);
  if (b.last_error) node.append(el("div", { class: "small", text: b.last_error }));
  if (b.status === "requested" || b.status === "retry") {
    const button = el("button", { type: "button", class: "call-back", text: "Call back now" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      const by = document.getElementById("agent-name").value;
      const r = await fetch("/api/callbacks/" + encodeURIComponent(b.call_sid) + "/call", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ by }) });
      if (!r.ok) button.disabled = false;
      loadCallbacks();
    });
    node.append(button);
  }
  return node;
}

async function loadCallbacks() {
  try {
    const r = await fetch("/api/callbacks");
    if (!r.ok) return;
    const list = await r.json();
    const box = document.getElementById("callbacks");
    box.replaceChildren(...(list.length ? list.map(callbackCard) : [el("p", { class: "empty", text: "Nobody is waiting for a call-back." })]));
  } catch (_) { /* the next poll tries again */ }
}

const nameInput = document.getElementById("agent-name");
nameInput.value = localStorage.getItem("orderline.agent-name") || "";
nameInput.addEventListener("change", () => localStorage.setItem("orderline.agent-name", nameInput.value));

setInterval(() => {
  for (const t of document.querySelectorAll(".timer[data-live='1']")) t.textContent = since(t.dataset.started);
}, 1000);
setInterval(loadVoicemails, 10000);
setInterval(loadCallbacks, 5000);
loadVoicemails();
loadCallbacks();
connect();
