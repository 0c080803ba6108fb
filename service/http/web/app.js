// The kanban board page: plain JavaScript, no build step. Everything goes
// through kanband's HTTP door (/api/v1/, canonical protobuf JSON: int64 as
// strings, defaults omitted) and its Server-Sent Events stream, which keeps
// the board live. Task snapshots carry a version, so an event or a response
// older than what the page shows is ignored, whatever order they arrive in.
"use strict";

const STATUSES = ["TRIAGE", "TODO", "READY", "RUNNING", "BLOCKED", "REVIEW", "DONE", "ARCHIVED"];
const TOKEN_KEY = "kanban-token";

const state = {
  board: "default",
  tasks: new Map(),   // id -> Task (JSON)
  pending: new Set(), // ids with a move in flight
  showArchived: false,
  events: null,       // the board's EventSource
  history: null,      // the open card's EventSource
  openTask: null,
  workersTimer: null,
};

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};
const num = (v) => Number(v || 0);

// ---- API ----------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function api(method, path, body) {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch("/api/v1" + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let json = {};
  try { json = await response.json(); } catch (e) { /* empty body */ }
  if (!response.ok) {
    const error = new ApiError(response.status, json.code || String(response.status), json.message);
    if (response.status === 401) showLogin(error.message);
    throw error;
  }
  return json;
}

// ---- Messages -----------------------------------------------------------------

let messageTimer = null;
function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

function setConn(stateName, text) {
  const conn = $("conn");
  conn.dataset.state = stateName;
  conn.textContent = text || stateName;
}

// ---- Sign-in ------------------------------------------------------------------

function showLogin(why) {
  const dialog = $("login");
  $("login-error").textContent = token() ? (why || "") : "";
  if (!dialog.open) dialog.showModal();
  $("login-token").focus();
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("login-token").value.trim());
  $("login-token").value = "";
  try {
    await api("GET", "/boards");
    $("login").close();
    $("logout").hidden = false;
    start();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

// ---- Board --------------------------------------------------------------------

async function loadBoards() {
  const { boards = [] } = await api("GET", "/boards");
  const select = $("board");
  select.textContent = "";
  const wanted = decodeURIComponent(location.hash.replace(/^#board=/, "")) || state.board;
  for (const b of boards) {
    const option = el("option", "", b.name);
    option.value = b.name;
    select.append(option);
  }
  state.board = boards.some((b) => b.name === wanted) ? wanted : (boards[0] || {}).name || "default";
  select.value = state.board;
}

async function loadTasks() {
  const tasks = new Map();
  let pageToken = "";
  do {
    const query = "?page_size=1000" + (pageToken ? "&page_token=" + encodeURIComponent(pageToken) : "");
    const page = await api("GET", "/boards/" + encodeURIComponent(state.board) + "/tasks" + query);
    for (const t of page.tasks || []) tasks.set(t.id, t);
    pageToken = page.nextPageToken || "";
  } while (pageToken);
  // Keep what the stream delivered while the list was being read: newer
  // snapshots, and tasks created after the list was taken.
  for (const [id, t] of state.tasks) {
    const listed = tasks.get(id);
    if (!listed || num(t.version) > num(listed.version)) tasks.set(id, t);
  }
  state.tasks = tasks;
  render();
}

// Applies a task snapshot unless the page already shows a newer one.
function applyTask(task) {
  if (!task || !task.id || task.board !== state.board) return;
  const current = state.tasks.get(task.id);
  if (current && num(current.version) > num(task.version)) return;
  state.tasks.set(task.id, task);
  if (state.openTask === task.id) fillDetails(task);
}

function eventsUrl(params) {
  const query = new URLSearchParams(params);
  if (token()) query.set("access_token", token());
  return "/api/v1/events?" + query.toString();
}

// Follows the board's event stream. EventSource reconnects by itself and
// resumes with Last-Event-ID; the server's own error events say when that
// cannot work (a compacted resume point, a revoked token).
function connect() {
  if (state.events) state.events.close();
  setConn("connecting");
  const es = new EventSource(eventsUrl({ board: state.board, from_now: "true" }));
  state.events = es;
  es.onopen = () => setConn("live");
  es.onmessage = (m) => {
    const event = JSON.parse(m.data);
    if (event.task) {
      applyTask(event.task);
      scheduleRender();
    }
  };
  es.addEventListener("error", (m) => {
    if (es !== state.events) return;
    if (m.data) {
      const error = JSON.parse(m.data);
      if (error.code === "OUT_OF_RANGE") {
        // The history we would resume from is gone: read the board afresh.
        es.close();
        showMessage("Missed too many changes; reloading the board.");
        connect();
        loadTasks().catch((e) => showMessage(e.message));
        return;
      }
      if (error.code === "UNAUTHENTICATED" || error.code === "PERMISSION_DENIED") {
        es.close();
        setConn("offline", "signed out");
        showLogin(error.message);
        return;
      }
    }
    if (es.readyState === EventSource.CLOSED) {
      // Refused outright (an HTTP error): try again shortly from scratch.
      setConn("offline");
      setTimeout(() => { if (es === state.events) { connect(); loadTasks().catch(() => {}); } }, 3000);
    } else {
      setConn("reconnecting");
    }
  });
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function render() {
  const focused = document.activeElement && document.activeElement.closest
    ? document.activeElement.closest(".card") : null;
  const focusedId = focused ? focused.dataset.id : null;
  const focusedSelect = document.activeElement && document.activeElement.tagName === "SELECT"
    && focused;
  const columns = $("columns");
  columns.textContent = "";
  const byStatus = new Map(STATUSES.map((s) => [s, []]));
  for (const t of state.tasks.values()) {
    if (byStatus.has(t.status)) byStatus.get(t.status).push(t);
  }
  for (const status of STATUSES) {
    if (status === "ARCHIVED" && !state.showArchived) continue;
    const list = byStatus.get(status);
    // As the server orders them: priority descending, then oldest first.
    list.sort((a, b) => (b.priority || 0) - (a.priority || 0)
      || String(a.createdAt).localeCompare(String(b.createdAt)));
    const column = el("section", "column");
    column.dataset.status = status;
    column.setAttribute("aria-label", status);
    const heading = el("h2");
    heading.append(el("span", "", status), el("span", "count", String(list.length)));
    column.append(heading);
    const ul = el("ul", "cards");
    for (const t of list) ul.append(card(t));
    column.append(ul);
    column.addEventListener("dragover", (e) => { e.preventDefault(); column.classList.add("over"); });
    column.addEventListener("dragleave", () => column.classList.remove("over"));
    column.addEventListener("drop", (e) => {
      e.preventDefault();
      column.classList.remove("over");
      const id = e.dataTransfer.getData("text/plain");
      if (id) move(id, status);
    });
    columns.append(column);
  }
  if (focusedId) {
    const again = columns.querySelector(`.card[data-id="${CSS.escape(focusedId)}"]`);
    if (again) (focusedSelect ? again.querySelector("select") : again).focus();
  }
  tickLeases();
}

function card(t) {
  const li = el("li", "card" + (state.pending.has(t.id) ? " pending" : ""));
  li.dataset.id = t.id;
  li.dataset.version = t.version || "0";
  li.tabIndex = 0;
  li.draggable = true;
  li.setAttribute("aria-label", `${t.title}, ${t.status}, priority ${t.priority || 0}`);
  li.append(el("div", "title", t.title));
  const meta = el("div", "meta");
  meta.append(el("span", "prio", "P" + (t.priority || 0)));
  if (t.assignee) meta.append(el("span", "assignee", "@" + t.assignee));
  if (t.attempt) meta.append(el("span", "attempt", `attempt ${t.attempt}/${t.maxAttempts || 3}`));
  if (t.status === "RUNNING") {
    if (t.workerId) meta.append(el("span", "worker", "⚙ " + t.workerId));
    if (t.leaseExpiresAt) {
      const lease = el("span", "lease");
      lease.dataset.expires = t.leaseExpiresAt;
      meta.append(lease);
    }
  }
  li.append(meta);
  if (t.labels && t.labels.length) {
    const labels = el("div", "labels");
    for (const l of t.labels) labels.append(el("span", "label", l));
    li.append(labels);
  }
  // Keyboard (and pointer) moves without dragging.
  const select = el("select");
  select.setAttribute("aria-label", `Move "${t.title}" to`);
  const here = el("option", "", "Move to…");
  here.value = "";
  select.append(here);
  for (const s of STATUSES) {
    if (s === t.status) continue;
    const o = el("option", "", s);
    o.value = s;
    select.append(o);
  }
  select.addEventListener("change", () => { if (select.value) move(t.id, select.value); });
  select.addEventListener("click", (e) => e.stopPropagation());
  select.addEventListener("keydown", (e) => e.stopPropagation());
  li.append(select);
  li.addEventListener("dragstart", (e) => {
    e.dataTransfer.setData("text/plain", t.id);
    e.dataTransfer.effectAllowed = "move";
  });
  li.addEventListener("click", () => openDetails(t.id));
  li.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openDetails(t.id); }
  });
  return li;
}

function tickLeases() {
  for (const lease of document.querySelectorAll(".lease[data-expires]")) {
    const left = Math.round((Date.parse(lease.dataset.expires) - Date.now()) / 1000);
    lease.textContent = left >= 0 ? `lease ${left}s` : "lease expired";
    lease.classList.toggle("expired", left < 0);
  }
}
setInterval(tickLeases, 1000);

// A move with expected_version: shown at once, snapped back if refused.
async function move(id, to) {
  const before = state.tasks.get(id);
  if (!before || before.status === to || state.pending.has(id)) { render(); return; }
  state.pending.add(id);
  state.tasks.set(id, { ...before, status: to });
  render();
  try {
    const moved = await api("POST", "/tasks/" + encodeURIComponent(id) + ":move",
      { toStatus: to, expectedVersion: before.version || "0" });
    state.pending.delete(id);
    // Undo the optimistic copy unless the stream already brought newer news.
    const current = state.tasks.get(id);
    if (!current || num(current.version) <= num(before.version)) state.tasks.set(id, before);
    applyTask(moved);
  } catch (err) {
    state.pending.delete(id);
    const current = state.tasks.get(id);
    if (current && current.status === to && num(current.version) === num(before.version)) {
      state.tasks.set(id, before);
    }
    showMessage(`Cannot move "${before.title}" to ${to}: ${err.message}`);
  }
  render();
}

// ---- Creating -----------------------------------------------------------------

$("create").addEventListener("submit", async (e) => {
  e.preventDefault();
  const labels = $("create-labels").value.split(",").map((s) => s.trim()).filter(Boolean);
  const request = {
    title: $("create-title").value,
    priority: Number($("create-priority").value || 0),
    labels,
    assignee: $("create-assignee").value.trim(),
  };
  try {
    const task = await api("POST", "/boards/" + encodeURIComponent(state.board) + "/tasks", request);
    applyTask(task);
    render();
    $("create").reset();
    $("create-title").focus();
  } catch (err) {
    showMessage("Cannot create the task: " + err.message);
  }
});

// ---- Card details ---------------------------------------------------------------

function fillDetails(t) {
  $("details-title").textContent = t.title;
  const parts = [t.status, "P" + (t.priority || 0), "version " + (t.version || 0), "id " + t.id];
  if (t.assignee) parts.push("@" + t.assignee);
  if (t.workerId) parts.push("worker " + t.workerId);
  if (t.lastError) parts.push("last error: " + t.lastError);
  if (t.result) parts.push("result: " + t.result);
  $("details-meta").textContent = parts.join(" · ");
  $("details-body").textContent = t.body || "(no description)";
}

async function openDetails(id) {
  const dialog = $("details");
  state.openTask = id;
  $("details-parents").textContent = "";
  $("details-comments").textContent = "";
  $("details-history").textContent = "";
  try {
    const t = await api("GET", "/tasks/" + encodeURIComponent(id));
    fillDetails(t);
    if (!dialog.open) dialog.showModal();
    for (const parentId of t.parentIds || []) {
      const li = el("li", "", parentId);
      $("details-parents").append(li);
      api("GET", "/tasks/" + encodeURIComponent(parentId))
        .then((p) => { li.textContent = `${p.title} (${p.status})`; }).catch(() => {});
    }
    if (!(t.parentIds || []).length) $("details-parents").append(el("li", "meta", "nothing"));
    await loadComments(id);
    // The task's history: its events from the start of the retained log.
    if (state.history) state.history.close();
    state.history = new EventSource(eventsUrl({ task_id: id, after_seq: "0" }));
    state.history.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      const when = ev.time ? new Date(ev.time).toLocaleString() : "";
      const who = ev.principal ? " by " + ev.principal : "";
      const to = ev.task ? " → " + ev.task.status : "";
      const why = ev.reason ? ` (${ev.reason})` : "";
      $("details-history").append(el("li", "", `#${ev.seq} ${when} ${ev.kind}${to}${who}${why}`));
      if (ev.kind === "commented" && state.openTask === id) loadComments(id).catch(() => {});
    };
  } catch (err) {
    showMessage(err.message);
  }
}

// Loads overlap (opening the card, adding a comment, a "commented" event):
// only the latest one started may render, or an answer read before the new
// comment existed could land last and hide it.
let commentLoads = 0;

async function loadComments(id) {
  const mine = ++commentLoads;
  const { comments = [] } = await api("GET", "/tasks/" + encodeURIComponent(id) + "/comments");
  if (mine !== commentLoads || state.openTask !== id) return;
  const list = $("details-comments");
  list.textContent = "";
  for (const c of comments) {
    const when = c.createdAt ? new Date(c.createdAt).toLocaleString() : "";
    list.append(el("li", "", `${c.author || "anonymous"} · ${when}: ${c.body}`));
  }
  if (!comments.length) list.append(el("li", "meta", "no comments yet"));
}

$("details").addEventListener("close", () => {
  state.openTask = null;
  if (state.history) { state.history.close(); state.history = null; }
});

$("comment-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = state.openTask;
  if (!id) return;
  try {
    await api("POST", "/tasks/" + encodeURIComponent(id) + "/comments",
      { author: $("comment-author").value.trim(), body: $("comment-body").value });
    $("comment-body").value = "";
    await loadComments(id);
  } catch (err) {
    showMessage("Cannot add the comment: " + err.message);
  }
});

// ---- Workers ----------------------------------------------------------------------

async function loadWorkers() {
  const { workers = [] } = await api("GET", "/workers?board=" + encodeURIComponent(state.board));
  const body = $("workers-body");
  body.textContent = "";
  for (const w of workers) {
    const tr = el("tr");
    const ago = w.lastSeen ? Math.round((Date.now() - Date.parse(w.lastSeen)) / 1000) + "s ago" : "";
    tr.append(el("td", "", w.workerId), el("td", "", ago),
      el("td", "", (w.taskIds || []).map((id) => (state.tasks.get(id) || {}).title || id).join(", ") || "—"));
    body.append(tr);
  }
  if (!workers.length) {
    const tr = el("tr");
    const td = el("td", "meta", "no workers seen");
    td.colSpan = 3;
    tr.append(td);
    body.append(tr);
  }
}

$("workers-toggle").addEventListener("click", () => {
  const panel = $("workers");
  panel.hidden = !panel.hidden;
  $("workers-toggle").setAttribute("aria-expanded", String(!panel.hidden));
  clearInterval(state.workersTimer);
  if (!panel.hidden) {
    loadWorkers().catch((e) => showMessage(e.message));
    state.workersTimer = setInterval(() => loadWorkers().catch(() => {}), 5000);
  }
});

// ---- Start ------------------------------------------------------------------------

$("board").addEventListener("change", () => {
  state.board = $("board").value;
  location.hash = "board=" + encodeURIComponent(state.board);
  state.tasks = new Map();
  connect();
  loadTasks().catch((e) => showMessage(e.message));
});

$("show-archived").addEventListener("change", () => {
  state.showArchived = $("show-archived").checked;
  render();
});

async function start() {
  try {
    await loadBoards();
    connect();
    await loadTasks();
    if (token()) $("logout").hidden = false;
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) showMessage(err.message);
  }
}

start();
