// The demo workspace: roomcast's own JavaScript client (clients/js) driving an
// annotation session, a detection stream, project progress and notifications.
// Every edit is an annotation_update with base_version; selecting a box takes its
// lease; "Go offline" drops the socket and the rejoin shows what was replayed.

import { RoomcastClient, RoomcastError } from "roomcast-client";
import { AnnotationCanvas } from "./canvas.js";
import { colourFor, initials } from "./scene.js";

const settings = JSON.parse(document.getElementById("demo-settings").textContent);
const ROOM = settings.annotationRoom;
const $ = (id) => document.getElementById(id);
const NAMES = ["Ann", "Ben", "Chloé", "Dev", "Emeka", "Fatima", "Gus", "Hana"];

// -- what the page knows ------------------------------------------------------------

const annotations = new Map(); // annotation_id -> {version, annotation, deleted, actor, status}
const locks = new Map(); // annotation_id -> {holder, fencing_token, expires_at}
const members = new Map(); // user_id -> member
const stats = { lastArrival: 0, frames: 0, skipped: 0, arrivals: [], latencies: [], detections: [], lastSeq: new Map(), gaps: 0 };
let me = null; // {user_id, name}
let selected = null; // annotation_id
let selectedLease = null; // the pending or settled lock() promise of the selected box
let clockOffsetMs = 0; // server clock - local clock, from connection_status
let online = true;
let releaseGate = null; // resolves the token provider's wait while offline
let client = null;
let modelAsked = false; // a GET /demo/model is on its way

function message(text, level = "info") {
  const el = $("message");
  el.textContent = text;
  el.dataset.level = level;
}

// -- annotations ----------------------------------------------------------------------

/** Apply one annotation's state if it is newer than what the page holds. */
function applyAnnotation(id, entry) {
  const current = annotations.get(id);
  if (current && current.version >= entry.version) return false;
  annotations.set(id, { status: null, ...current, ...entry });
  return true;
}

async function loadState() {
  const response = await fetch("/demo/state");
  const state = await response.json();
  for (const [id, entry] of Object.entries(state.annotations)) applyAnnotation(id, entry);
  if (!state.complete) message("The room's history no longer reaches back to its first edit: older boxes are missing.", "warning");
  render();
}

async function reloadAnnotation(id) {
  const state = await (await fetch("/demo/state")).json();
  const entry = state.annotations[id];
  if (entry) {
    annotations.set(id, { status: null, ...entry });
  }
  render();
}

function onAnnotationUpdate(event) {
  track(event);
  const d = event.data;
  const changed = applyAnnotation(d.annotation_id, {
    version: d.version,
    annotation: d.action === "delete" ? annotations.get(d.annotation_id)?.annotation : d.annotation,
    deleted: d.action === "delete",
    actor: event.actor,
    status: null,
  });
  if (changed && d.action === "delete" && selected === d.annotation_id) deselect();
  render();
}

function onValidated(event) {
  track(event);
  const d = event.data;
  const entry = annotations.get(d.annotation_id);
  if (entry && entry.version === d.version) entry.status = d.status;
  render();
}

function onLock(event) {
  track(event);
  const d = event.data;
  if (d.state === "locked") locks.set(d.annotation_id, d);
  else locks.delete(d.annotation_id);
  if (selected === d.annotation_id) showSelection();
  render();
}

/** The room's events arrive in order without gaps (the client's promise); count any. */
function track(event) {
  const last = stats.lastSeq.get(event.room);
  if (last && last.epoch === event.epoch && event.seq !== last.seq + 1 && !event.skipped) stats.gaps += 1;
  stats.lastSeq.set(event.room, { epoch: event.epoch, seq: event.seq });
  if (event.room === ROOM) $("position").textContent = `${event.epoch.slice(0, 8)}:${event.seq}`;
  $("gaps").textContent = String(stats.gaps);
}

// -- editing ----------------------------------------------------------------------------

function boxes() {
  const list = [];
  for (const [id, entry] of annotations) {
    if (entry.deleted || !entry.annotation) continue;
    const lock = locks.get(id);
    list.push({
      id,
      shape: entry.annotation.shape,
      label: entry.annotation.label,
      author: entry.actor ? entry.actor.user_id : "?",
      holder: lock ? lock.holder : null,
      mine: Boolean(lock && me && lock.holder.user_id === me.user_id),
      status: entry.status,
    });
  }
  return list;
}

function newId() {
  return `${me.user_id}-${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}

async function publish(data) {
  const id = data.annotation_id;
  const lease = client.lease(ROOM, id);
  if (lease) data.fencing_token = lease.fencingToken;
  try {
    return await client.publish("annotation_update", ROOM, data);
  } catch (err) {
    if (err instanceof RoomcastError && err.code === "conflict") {
      message(`Conflict on ${id}: someone changed it first (now v${err.details.current_version}); reloaded.`, "warning");
      await reloadAnnotation(id);
    } else if (err instanceof RoomcastError && err.code === "locked") {
      const holder = err.details.holder;
      message(`${id} is being edited by ${holder ? holder.name || holder.user_id : "someone else"}.`, "warning");
      await reloadAnnotation(id);
    } else {
      message(`Edit refused: ${err.message}`, "error");
    }
    return null;
  }
}

async function create(shape) {
  const id = newId();
  const label = $("label").value.trim() || "object";
  const ack = await publish({ action: "create", annotation_id: id, base_version: null,
    annotation: { label, shape, attributes: {} } });
  if (ack) select(id);
}

function select(id) {
  if (selected === id) return;
  if (selected) release(selected);
  selected = id;
  selectedLease = client.lock(ROOM, id).then(
    (ack) => ({ ok: true, ack }),
    (err) => ({ ok: false, err }),
  );
  showSelection("asking");
  selectedLease.then((result) => {
    if (selected !== id) return;
    if (!result.ok) showSelection("refused", result.err);
    else showSelection();
  });
  render();
}

function release(id) {
  client.unlock(ROOM, id).catch(() => {}); // gone already: the lease ends with its holder
}

function deselect() {
  if (!selected) return;
  release(selected);
  selected = null;
  selectedLease = null;
  showSelection();
  render();
}

async function commit(id, shape, origin) {
  const result = await selectedLease;
  const entry = annotations.get(id);
  if (!result || !result.ok || !entry) {
    render();
    return;
  }
  entry.annotation = { ...entry.annotation, shape }; // shown at once, confirmed by the event
  render();
  const ack = await publish({ action: "update", annotation_id: id, base_version: entry.version,
    annotation: { label: entry.annotation.label, shape, attributes: entry.annotation.attributes || {} } });
  if (!ack && annotations.get(id) === entry && entry.annotation.shape === shape) {
    entry.annotation = { ...entry.annotation, shape: origin };
    render();
  }
}

async function relabel() {
  const entry = annotations.get(selected);
  const label = $("label").value.trim();
  if (!entry || !label || label === entry.annotation.label) return;
  await publish({ action: "update", annotation_id: selected, base_version: entry.version,
    annotation: { ...entry.annotation, label } });
}

async function remove() {
  const id = selected;
  const entry = annotations.get(id);
  if (!entry) return;
  await publish({ action: "delete", annotation_id: id, base_version: entry.version });
}

async function review() {
  const entry = annotations.get(selected);
  if (!entry) return;
  const author = entry.actor ? entry.actor.user_id : me.user_id;
  await fetch("/demo/review", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ annotation_id: selected, version: entry.version, label: entry.annotation.label, author_id: author }),
  });
  message(`${selected} v${entry.version} sent for review.`);
}

function showSelection(state, err) {
  const box = $("selection");
  const lease = $("lease");
  const entry = selected ? annotations.get(selected) : null;
  const lock = selected ? locks.get(selected) : null;
  const mine = Boolean(lock && me && lock.holder.user_id === me.user_id);
  if (!entry) {
    box.dataset.state = "none";
    lease.textContent = "Click a box to edit it.";
    $("label").value = "";
  } else if (state === "refused" || (lock && !mine)) {
    const holder = (err && err.details && err.details.holder) || (lock && lock.holder);
    box.dataset.state = "refused";
    lease.textContent = `Locked by ${holder ? holder.name || holder.user_id : "another user"}: read only.`;
  } else if (mine) {
    box.dataset.state = "held";
    lease.textContent = `Your lease (fencing token ${lock.fencing_token}), renewed while selected.`;
  } else {
    box.dataset.state = "asking";
    lease.textContent = "Taking the lease…";
  }
  const editable = box.dataset.state === "held";
  $("label").disabled = !editable;
  $("delete").disabled = !editable;
  $("review").disabled = !entry;
  if (entry && document.activeElement !== $("label")) $("label").value = entry.annotation.label;
}

// -- presence ---------------------------------------------------------------------------

function onPresence(p) {
  if (p.room !== ROOM) return;
  if (p.joined) members.set(p.joined.user_id, p.joined);
  if (p.left) {
    if (p.left.connections > 0) members.set(p.left.user_id, p.left);
    else members.delete(p.left.user_id);
  }
  renderPresence();
}

function renderPresence() {
  const list = $("presence");
  list.replaceChildren(...[...members.values()].map((m) => {
    const li = document.createElement("li");
    li.dataset.user = m.user_id;
    li.title = `${m.name || m.user_id}: ${m.connections} connection(s)`;
    const b = document.createElement("b");
    b.style.background = colourFor(m.user_id);
    b.textContent = initials(m.name || m.user_id);
    li.append(b, document.createTextNode(m.name || m.user_id));
    if (me && m.user_id === me.user_id) li.append(document.createTextNode(" (you)"));
    return li;
  }));
}

// -- detections, progress, notifications -------------------------------------------------

function onDetection(event) {
  stats.frames += 1;
  stats.skipped += event.skipped || 0;
  const now = Date.now();
  stats.arrivals.push(now);
  stats.lastArrival = now;
  stats.latencies.push(now + clockOffsetMs - event.ts);
  if (stats.latencies.length > 200) stats.latencies.splice(0, stats.latencies.length - 200);
  stats.detections = event.data.detections;
  if ($("show-det").checked) view.draw();
}

function onSkippedNotice(notice) {
  if (notice && notice.room === settings.detectionRoom) stats.skipped += notice.skipped || 0;
}

function renderStats() {
  const now = Date.now();
  while (stats.arrivals.length && stats.arrivals[0] < now - 1000) stats.arrivals.shift();
  // Another window may have started or stopped the model: ask when the stream says so.
  const streaming = now - stats.lastArrival < 2500;
  if (streaming !== ($("run").dataset.running === "true") && !modelAsked) {
    modelAsked = true;
    fetch("/demo/model").then((r) => r.json()).then(showModel).finally(() => (modelAsked = false));
  }
  $("fps").textContent = String(stats.arrivals.length);
  $("frames").textContent = String(stats.frames);
  $("skipped").textContent = String(stats.skipped);
  if (stats.latencies.length) {
    const sorted = [...stats.latencies].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    $("latency").textContent = median >= 1 ? `${median} ms` : "<1 ms";
  }
}

function onProgress(event) {
  const d = event.data;
  $("progress-bar").style.width = `${Math.min(100, d.percent)}%`;
  $("progress").textContent = `${d.stage ? d.stage + ": " : ""}${d.completed} of ${d.total} (${d.percent}%)`;
}

function onNotification(event) {
  const li = document.createElement("li");
  li.dataset.level = event.data.level;
  li.textContent = event.data.body ? `${event.data.title} · ${event.data.body}` : event.data.title;
  $("notifications").prepend(li);
}

async function runModel() {
  const running = $("run").dataset.running === "true";
  const path = running ? "/demo/model/stop" : "/demo/model/start";
  const status = await (await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ rate: Number($("rate").value) }) })).json();
  showModel(status);
}

function showModel(status) {
  $("run").dataset.running = String(status.running);
  $("run").textContent = status.running ? "Stop model" : "Run model";
}

// -- connection and resilience ----------------------------------------------------------

function showConnection(state) {
  const conn = $("conn");
  const shown = !online ? "offline" : state;
  conn.dataset.state = shown;
  conn.querySelector("span").textContent = { connected: "connected", connecting: "connecting…",
    disconnected: "disconnected", offline: "offline (by you)" }[shown];
}

async function tokenProvider() {
  // While "offline" the client's reconnect attempts wait here.
  while (!online) await new Promise((resolve) => (releaseGate = resolve));
  const response = await fetch(`/demo/token?user=${encodeURIComponent(me.name)}`);
  return (await response.json()).token;
}

function goOffline() {
  online = false;
  $("offline").setAttribute("aria-pressed", "true");
  $("offline").textContent = "Go online";
  showConnection("disconnected");
  // engine.io-client drops its connection on the browser's "offline" event, as it
  // would when the network went away; the token provider then holds the reconnect.
  window.dispatchEvent(new Event("offline"));
}

async function goOnline() {
  online = true;
  $("offline").setAttribute("aria-pressed", "false");
  $("offline").textContent = "Go offline";
  // Joining now waits for the client's own rejoin with `since` and gets its ack.
  const acks = [ROOM, settings.detectionRoom, settings.projectRoom].map((room) => client.join(room));
  if (releaseGate) releaseGate();
  const [ack] = await Promise.all(acks);
  showJoin(ack);
  message(`Back online: ${ack.replayed} event(s) replayed, ${stats.gaps} gap(s).`, "info");
}

function showJoin(ack) {
  $("replayed").textContent = String(ack.replayed);
  $("recovered").textContent = String(ack.recovered);
  members.clear();
  for (const m of ack.presence || []) members.set(m.user_id, m);
  locks.clear();
  for (const lease of ack.locks || []) locks.set(lease.annotation_id, lease);
  renderPresence();
  render();
}

async function onResync(room) {
  if (room !== ROOM) return;
  message("The room's history was lost (recovered: false): reloading its state.", "warning");
  annotations.clear();
  await loadState();
}

// -- wiring ----------------------------------------------------------------------------

function render() {
  const list = $("annotations");
  const items = [];
  let count = 0;
  for (const [id, entry] of annotations) {
    if (entry.deleted || !entry.annotation) continue;
    count += 1;
    const li = document.createElement("li");
    li.dataset.id = id;
    li.dataset.version = String(entry.version);
    li.dataset.label = entry.annotation.label;
    const lock = locks.get(id);
    if (lock) li.dataset.holder = lock.holder.user_id;
    if (entry.status) li.dataset.status = entry.status;
    const name = document.createElement("span");
    name.textContent = `${entry.annotation.label}${entry.status === "accepted" ? " ✓" : ""}${lock ? ` · leased by ${lock.holder.name || lock.holder.user_id}` : ""}`;
    const v = document.createElement("span");
    v.className = "v";
    v.textContent = `v${entry.version}`;
    li.append(name, v);
    items.push(li);
  }
  list.replaceChildren(...items);
  $("ann-count").textContent = `(${count})`;
  if (selected) showSelection($("selection").dataset.state === "refused" ? "refused" : undefined);
  view.draw();
}

const view = new AnnotationCanvas($("canvas"), {
  boxes,
  selected: () => selected,
  detections: () => stats.detections,
  showDetections: () => $("show-det").checked,
}, { create, select, deselect, commit });

async function start(name) {
  const response = await fetch(`/demo/token?user=${encodeURIComponent(name)}`);
  const identity = await response.json();
  me = { user_id: identity.user_id, name: identity.name };
  const chip = $("me");
  chip.hidden = false;
  chip.innerHTML = "";
  const b = document.createElement("b");
  b.style.background = colourFor(me.user_id);
  b.textContent = initials(me.name);
  chip.append(b, document.createTextNode(me.name));
  document.title = `${me.name} · roomcast workspace`;

  client = new RoomcastClient({
    url: window.location.origin,
    tokenProvider,
    initialDelayMs: 200,
    maxDelayMs: 3000,
    onConnectionChange: showConnection,
    onResync,
    onLeaseLost: (room, id) => message(`Lost the lease on ${id}.`, "warning"),
  });
  client.on("connection_status", (s) => {
    if (typeof s.server_time === "number") clockOffsetMs = s.server_time - Date.now();
  });
  client.on("annotation_update", onAnnotationUpdate);
  client.on("annotation_validated", onValidated);
  client.on("annotation_lock", onLock);
  client.on("presence", onPresence);
  client.on("detection_event", onDetection);
  client.on("skipped", onSkippedNotice);
  client.on("project_progress_update", onProgress);
  client.on("notification", onNotification);
  await client.connect();
  const [ack] = await Promise.all([ROOM, settings.detectionRoom, settings.projectRoom].map((r) => client.join(r)));
  showJoin(ack);
  await loadState();
  showModel(await (await fetch("/demo/model")).json());
  for (const id of ["offline", "run"]) $(id).disabled = false;
  document.body.dataset.ready = "true";
}

$("offline").addEventListener("click", () => (online ? goOffline() : goOnline()));
$("run").addEventListener("click", runModel);
$("rate").addEventListener("input", () => {
  $("rate-out").textContent = `${$("rate").value} fps`;
});
$("rate").addEventListener("change", () => {
  if ($("run").dataset.running === "true") {
    fetch("/demo/model/start", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ rate: Number($("rate").value) }) });
  }
});
$("show-det").addEventListener("change", () => view.draw());
$("label").addEventListener("change", relabel);
$("delete").addEventListener("click", remove);
$("review").addEventListener("click", review);
window.addEventListener("keydown", (e) => {
  if (e.target === $("label")) return;
  if (e.key === "Escape") deselect();
  if ((e.key === "Delete" || e.key === "Backspace") && selected && $("selection").dataset.state === "held") remove();
});
setInterval(renderStats, 250);

const params = new URLSearchParams(window.location.search);
$("rate").min = settings.minRate;
$("rate").max = settings.maxRate;
$("rate").value = settings.defaultRate;
$("rate-out").textContent = `${settings.defaultRate} fps`;
$("name").value = params.get("user") || NAMES[Math.floor(Math.random() * NAMES.length)];
if (settings.missing.length) {
  message("This page cannot run: see the notice above.", "error");
} else if (params.get("user")) {
  start(params.get("user"));
} else {
  $("login").showModal();
  $("login-form").addEventListener("submit", () => start($("name").value.trim() || "Ann"));
}
view.draw();
