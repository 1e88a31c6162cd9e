// qkdn dashboard: plain JS, no dependencies. Reads the orchestrator's REST API with the
// operator token (URL fragment #token=..., kept in sessionStorage, or typed in), redraws the
// topology every second and follows the event stream with fetch() (which, unlike
// EventSource, can send the Authorization header).
"use strict";

const API = "/api/v1";
const SVG_NS = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;
const QBER_WARNING = 0.05;
const state = { token: null, network: null, selectedLink: null, selectedNode: null,
                selectedSession: null, lastSeq: 0, positions: {}, layoutKey: "" };

function $(sel) { return document.querySelector(sel); }
function el(tag, attrs = {}, text) {
  const node = tag === "svg" || ["line", "circle", "g", "text", "title"].includes(tag)
    ? document.createElementNS(SVG_NS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function readToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem("qkdn-token", hash.get("token"));
    history.replaceState(null, "", location.pathname);
  }
  return sessionStorage.getItem("qkdn-token");
}

async function api(path, options = {}) {
  const headers = Object.assign({ "Authorization": "Bearer " + state.token }, options.headers || {});
  const response = await fetch(API + path, Object.assign({}, options, { headers }));
  if (response.status === 401) { showLogin("the token was refused"); throw new Error("401"); }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const detail = body && (body.detail || body.title) || response.statusText;
    throw new Error(response.status + " " + detail);
  }
  return body;
}

function showLogin(message) {
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
}

// ------------------------------------------------------------------ formatting
function rate(bps) {
  if (bps === undefined || bps === null) return "–";
  if (bps >= 1e6) return (bps / 1e6).toFixed(2) + " Mb/s";
  if (bps >= 1e3) return (bps / 1e3).toFixed(1) + " kb/s";
  return bps + " b/s";
}
function qberOf(perf) {
  const entry = ((perf && perf.phys_perf) || []).find(p => p.perf_type === "QBER");
  return entry ? entry.value : null;
}
function linkIsDown(link) {
  const details = link.phys_link_details || {};
  const perf = details.qkdl_performance || {};
  return (link.qkdl_status && link.qkdl_status !== "ACTIVE") || details.qkdl_enable === false
    || perf.skr === 0;
}
function rateClass(skr) {
  if (skr > 100000) return "rate-high";
  if (skr > 10000) return "rate-mid";
  return "rate-low";
}

// ------------------------------------------------------------------ layout
function layout(nodes, links) {
  const key = nodes.map(n => n.qkdn_id).sort().join(",");
  if (key === state.layoutKey) return state.positions;
  const degree = {};
  for (const l of links) {
    for (const end of [l.qkdl_local, l.qkdl_remote]) {
      if (end) degree[end.qkdn_id] = (degree[end.qkdn_id] || 0) + 1;
    }
  }
  const sorted = nodes.slice().sort((a, b) =>
    String(a.qkdn_name || a.qkdn_id).localeCompare(String(b.qkdn_name || b.qkdn_id),
                                                    undefined, { numeric: true }));
  let hub = null;
  const best = sorted.reduce((m, n) => (degree[n.qkdn_id] || 0) > (degree[m && m.qkdn_id] || 0) ? n : m, null);
  if (best && nodes.length > 3 && (degree[best.qkdn_id] || 0) >= (nodes.length - 1) / 2) hub = best;
  const ring = sorted.filter(n => n !== hub);
  const positions = {};
  const cx = 320, cy = 240, r = Math.min(200, 60 + 25 * ring.length);
  ring.forEach((n, i) => {
    const angle = -Math.PI / 2 + 2 * Math.PI * i / Math.max(ring.length, 1);
    positions[n.qkdn_id] = { x: cx + r * Math.cos(angle), y: cy + r * Math.sin(angle) };
  });
  if (hub) positions[hub.qkdn_id] = { x: cx, y: cy };
  state.positions = positions;
  state.layoutKey = key;
  return positions;
}

// ------------------------------------------------------------------ drawing
function draw(network) {
  const nodes = (network.sdqkd_nodes || {}).sdqkd_node || [];
  const links = ((network.qkd_links || {}).phys_links || {}).phys_link || [];
  const sessions = ((network.qkd_links || {}).svc_links || {}).svc_link || [];
  const pos = layout(nodes, links);
  const names = {};
  for (const n of nodes) names[n.qkdn_id] = n.qkdn_name || n.qkdn_id.slice(0, 8);
  $("#network-name").textContent = network.qkd_network_name || "";

  const linksLayer = $("#links-layer");
  linksLayer.replaceChildren();
  let down = 0;
  for (const link of links) {
    const a = pos[(link.qkdl_local || {}).qkdn_id], b = pos[(link.qkdl_remote || {}).qkdn_id];
    if (!a || !b) continue;
    const perf = (link.phys_link_details || {}).qkdl_performance || {};
    const isDown = linkIsDown(link);
    if (isDown) down += 1;
    const qber = qberOf(perf);
    const classes = ["link", isDown ? "down" : rateClass(perf.skr || 0)];
    if (state.selectedLink === link.qkdl_id) classes.push("selected");
    const line = el("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: classes.join(" "),
                              "data-qkdl-id": link.qkdl_id,
                              "data-status": isDown ? "down" : "up",
                              "data-skr": perf.skr || 0, "data-qber": qber === null ? "" : qber });
    line.appendChild(el("title", {}, `${names[link.qkdl_local.qkdn_id]}–${names[link.qkdl_remote.qkdn_id]}: ` +
      `skr ${rate(perf.skr)}, QBER ${qber === null ? "–" : (100 * qber).toFixed(1) + " %"}`));
    line.addEventListener("click", () => { state.selectedLink = link.qkdl_id;
                                           state.selectedNode = null; refreshSelection(); });
    linksLayer.appendChild(line);
    const mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2;
    linksLayer.appendChild(el("text", { x: mx + 6, y: my - 6, class: "link-label" },
                              isDown ? "down" : rate(perf.skr)));
    if (qber !== null && qber > QBER_WARNING) {
      linksLayer.appendChild(el("text", { x: mx - 8, y: my + 6, class: "qber-warning",
                                          "data-qkdl-id": link.qkdl_id }, "⚠"));
    }
  }

  const pathsLayer = $("#paths-layer");
  pathsLayer.replaceChildren();
  const chosen = sessions.find(s => s.qkdl_id === state.selectedSession);
  if (chosen) {
    for (const path of (chosen.paths || {}).path || []) {
      const hops = path.hop || [];
      for (let i = 0; i + 1 < hops.length; i++) {
        const a = pos[hops[i].qkdn_id], b = pos[hops[i + 1].qkdn_id];
        if (a && b) pathsLayer.appendChild(el("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y,
                                                       class: "path",
                                                       "data-session": chosen.qkdl_id }));
      }
    }
  }

  const nodesLayer = $("#nodes-layer");
  nodesLayer.replaceChildren();
  for (const node of nodes) {
    const p = pos[node.qkdn_id];
    if (!p) continue;
    const classes = ["node"];
    if (node.qkdn_status && !["OPERATING", "NEW"].includes(node.qkdn_status)) classes.push("down");
    if (state.selectedNode === (node.qkdn_name || node.qkdn_id)) classes.push("selected");
    const g = el("g", { class: classes.join(" "), "data-qkdn-id": node.qkdn_id,
                        "data-name": names[node.qkdn_id],
                        "data-status": node.qkdn_status || "" });
    g.appendChild(el("circle", { cx: p.x, cy: p.y, r: 22 }));
    g.appendChild(el("text", { x: p.x, y: p.y }, names[node.qkdn_id]));
    g.appendChild(el("title", {}, `${names[node.qkdn_id]} (${node.qkdn_status || "?"})`));
    g.addEventListener("click", () => { state.selectedNode = node.qkdn_name || node.qkdn_id;
                                        state.selectedLink = null; refreshSelection(); });
    nodesLayer.appendChild(g);
  }

  const summary = $("#summary");
  summary.dataset.nodes = nodes.length;
  summary.dataset.links = links.length;
  summary.dataset.linksDown = down;
  summary.dataset.sessions = sessions.length;
  summary.textContent = `${nodes.length} nodes · ${links.length} links` +
    (down ? ` (${down} down)` : "") + ` · ${sessions.length} sessions`;

  drawLinkTable(links, names);
  drawSessions(sessions, names);
  refreshButtons();
}

function drawLinkTable(links, names) {
  const body = $("#links-table tbody");
  body.replaceChildren();
  for (const link of links) {
    const perf = (link.phys_link_details || {}).qkdl_performance || {};
    const store = perf.key_store || {};
    const level = store.capacity_bits ? Math.min(1, (store.stored_key_bits || 0) / store.capacity_bits) : null;
    const qber = qberOf(perf);
    const row = el("tr", { "data-qkdl-id": link.qkdl_id,
                           class: (linkIsDown(link) ? "down " : "") +
                                  (state.selectedLink === link.qkdl_id ? "selected" : "") });
    const bar = el("span", { class: "bar", title: level === null ? "" : (100 * level).toFixed(0) + " %" });
    bar.appendChild(el("i", { style: `width:${level === null ? 0 : (100 * level).toFixed(0)}%` }));
    const cells = [
      `${names[(link.qkdl_local || {}).qkdn_id] || "?"}–${names[(link.qkdl_remote || {}).qkdn_id] || "?"}`,
      link.qkdl_status || "?", rate(perf.skr), rate(perf.eskr),
      qber === null ? "–" : (100 * qber).toFixed(1) + " %" + (qber > QBER_WARNING ? " ⚠" : ""),
    ];
    for (const text of cells) row.appendChild(el("td", {}, text));
    const storeCell = el("td");
    storeCell.appendChild(bar);
    storeCell.appendChild(document.createTextNode(" " + (store.stored_key_bits !== undefined
      ? (store.stored_key_bits / 8192).toFixed(0) + " KiB" : "–")));
    row.appendChild(storeCell);
    row.addEventListener("click", () => { state.selectedLink = link.qkdl_id;
                                          state.selectedNode = null; refreshSelection(); });
    body.appendChild(row);
  }
}

function drawSessions(sessions, names) {
  const list = $("#sessions");
  list.replaceChildren();
  $("#session-count").textContent = sessions.length ? `(${sessions.length})` : "(none)";
  for (const s of sessions) {
    const d = s.svc_link_details || {};
    const hops = (((s.paths || {}).path || [])[0] || {}).hop || [];
    const route = hops.map(h => names[h.qkdn_id] || "?").join("→");
    const li = el("li", { "data-session": s.qkdl_id,
                          class: state.selectedSession === s.qkdl_id ? "selected" : "" },
      `${(d.local_app || {}).sae_id || "?"} ⇄ ${(d.remote_app || {}).sae_id || "?"}  ` +
      `${route}  ${d.session_state || ""} ${rate(d.bandwidth)}`);
    li.addEventListener("click", () => {
      state.selectedSession = state.selectedSession === s.qkdl_id ? null : s.qkdl_id;
      if (state.network) draw(state.network);
    });
    list.appendChild(li);
  }
}

function refreshSelection() {
  const text = state.selectedLink
    ? "link " + ($(`tr[data-qkdl-id="${state.selectedLink}"] td`) || {}).textContent
    : state.selectedNode ? "node " + state.selectedNode : "select a link or a node";
  $("#selection").textContent = text;
  if (state.network) draw(state.network);
}

function refreshButtons() {
  for (const button of document.querySelectorAll("#faults button")) {
    const needs = button.dataset.needs;
    button.disabled = needs === "link" ? !state.selectedLink : !state.selectedNode;
  }
}

// ------------------------------------------------------------------ events
function addEvent(event) {
  if (event.seq <= state.lastSeq) return;
  state.lastSeq = event.seq;
  const data = event.data || {};
  let text = event.type;
  let cls = "";
  if (event.type === "alarm") {
    cls = data.cleared ? "cleared" : "alarm";
    text = `alarm ${data.alarm_type || ""}${data.cleared ? " cleared" : ""}: ${data.message || ""}`;
  } else if (data.reason) {
    text += ` (${data.reason})`;
  } else if (event.type === "fault_injected") {
    text = "fault " + (data.message || data.action);
  } else if (data.qkdl_id) {
    text += " " + data.qkdl_id.slice(0, 8);
  }
  const li = el("li", { class: cls, "data-seq": event.seq, "data-type": event.type });
  li.appendChild(el("time", {}, (event.event_time || "").slice(11, 23)));
  li.appendChild(document.createTextNode(text));
  const timeline = $("#timeline");
  timeline.insertBefore(li, timeline.firstChild);
  while (timeline.children.length > 200) timeline.removeChild(timeline.lastChild);
}

async function followEvents() {
  // first the recent history, then the live stream; on any failure poll and retry
  for (;;) {
    try {
      const page = await api(`/events?after=${Math.max(0, state.lastSeq)}&limit=100`);
      page.events.forEach(addEvent);
      const response = await fetch(`${API}/events/stream?after=${state.lastSeq}`,
        { headers: { "Authorization": "Bearer " + state.token } });
      if (!response.ok || !response.body) throw new Error("stream " + response.status);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = block.split("\n").filter(l => l.startsWith("data: "))
                            .map(l => l.slice(6)).join("\n");
          if (data) addEvent(JSON.parse(data));
        }
      }
    } catch (err) {
      if (String(err.message) === "401") return;
    }
    await new Promise(r => setTimeout(r, 2000));
  }
}

// ------------------------------------------------------------------ polling and actions
async function poll() {
  try {
    const [net, status] = await Promise.all([api("/qkd_network"), api("/status")]);
    state.network = net.qkd_network;
    draw(state.network);
    const pill = $("#controller-state");
    const ok = status.controller && status.controller.subscribed;
    pill.textContent = ok ? "controller connected" : "controller not subscribed";
    pill.className = "pill " + (ok ? "ok" : "bad");
  } catch (err) {
    const pill = $("#controller-state");
    pill.textContent = "controller: " + err.message;
    pill.className = "pill bad";
  }
  setTimeout(poll, POLL_MS);
}

async function faultAction(button) {
  const body = { action: button.dataset.action };
  if (button.dataset.needs === "link") body.link = { qkdl_id: state.selectedLink };
  else body.node = state.selectedNode;
  if (button.dataset.value) body.value = Number(button.dataset.value);
  try {
    const result = await api("/faults", { method: "POST", body: JSON.stringify(body),
                                          headers: { "Content-Type": "application/json" } });
    $("#fault-result").textContent = result.message || "done";
  } catch (err) {
    $("#fault-result").textContent = "failed: " + err.message;
  }
}

function start() {
  for (const button of document.querySelectorAll("#faults button")) {
    button.addEventListener("click", () => faultAction(button));
  }
  $("#login").addEventListener("submit", ev => {
    ev.preventDefault();
    state.token = $("#token-input").value.trim();
    sessionStorage.setItem("qkdn-token", state.token);
    $("#login").hidden = true;
    poll(); followEvents();
  });
  state.token = readToken();
  if (!state.token) { showLogin(); return; }
  poll();
  followEvents();
}

document.addEventListener("DOMContentLoaded", start);
