// The live viewer: one WebSocket to /v1/stream authenticated by a short-lived JWT from the
// session, resumed from the last cursor whenever it closes (the JWT expires, a node restarts,
// the viewer pauses). Every field of an indicator is attacker-controlled text: it reaches the
// page through `el`, as text, only.
import { api, copy, count, describeLimits, el } from "./common.js";
import { line } from "./chart.js";

const MAX_ROWS = 200;
const CHART_SECONDS = 60;
const CORRELATOR = "sluice/correlator";

const gateway = (document.querySelector('meta[name="sluice-gateway"]')?.content || location.origin).replace(/\/+$/, "");
const websocketBase = gateway.replace(/^http/, "ws");

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const form = document.getElementById("filters");
const liveRows = document.querySelector("#live tbody");
const correlatedRows = document.querySelector("#correlated tbody");
const pauseButton = $("stream-pause");
const chart = document.getElementById("rate-chart");

let socket = null;
let cursor = null;
let paused = false;
let received = 0;
let dropped = 0;
let thisSecond = 0;
const perSecond = new Array(CHART_SECONDS).fill(0);
let retryDelay = 1000;
let retryTimer = null;
let includesCorrelated = true;
// Connections that closed before their `hello`: the gateway refused the handshake (bad
// filters, the plan's stream cap, …), which a browser only sees as close code 1006.
let refusals = 0;
const MAX_REFUSALS = 5;
// Whether the plan keeps history to resume from (free keeps none: resuming would only `reset`).
let replays = true;

/// The filters of the form, as the stream's query parameters.
function filters() {
  const params = new URLSearchParams();
  const data = new FormData(form);
  for (const name of ["itype", "tags", "confidence", "tlp", "profile"]) {
    const value = String(data.get(name) ?? "").trim().replace(/\s*,\s*/g, ",");
    if (value) params.set(name, value);
  }
  return params;
}

// The filters of the open stream: what the form said at the last Apply (reconnects keep them
// even while the form is being edited).
let applied = filters();

function showCommands() {
  const query = filters().toString();
  const path = `/v1/stream${query ? `?${query}` : ""}`;
  $("copy-wscat-command").textContent = `wscat -H "Authorization: Bearer $SLUICE_TOKEN" -c '${websocketBase}${path}'`;
  $("copy-curl-command").textContent = `curl -N -H "Authorization: Bearer $SLUICE_TOKEN" '${gateway}${path}'`;
}

function setState(text) {
  $("stream-state").textContent = text;
}

function notice(text) {
  const target = $("stream-notice");
  target.textContent = text ?? "";
  target.hidden = !text;
}

function setCount(testid, value) {
  const target = $(testid);
  target.textContent = count(value);
  target.dataset.count = String(value);
}

function setPlan(plan, limits) {
  replays = Boolean(limits?.replay_window_seconds);
  $("stream-plan").textContent = plan;
  $("stream-limits").textContent = limits ? `(${describeLimits(limits)})` : "";
  includesCorrelated = Boolean(limits?.correlated);
  document.getElementById("correlated-hint").textContent = includesCorrelated
    ? "Three distinct providers reporting the same scanner within 24 hours."
    : "Your plan does not include the correlated stream; see Plans.";
}

function time(text) {
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? String(text ?? "") : date.toLocaleTimeString("en-GB");
}

function tags(data) {
  return Array.isArray(data.tags) ? data.tags.join(", ") : "";
}

function prepend(body, row) {
  body.prepend(row);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
}

/// Strikes out the rows of what `data`'s provider withdrew (compared as text, never as a
/// selector: the indicator is attacker-controlled).
function strike(data) {
  for (const row of liveRows.rows) {
    if (row.dataset.indicator === String(data.indicator) && row.dataset.provider === String(data.provider)) {
      row.classList.add("withdrawn");
    }
  }
}

function show(id, data, withdrawn = false) {
  const correlated = data.provider === CORRELATOR;
  const indicator = el("td", { className: "indicator", title: String(data.indicator ?? "") }, data.indicator);
  if (correlated) {
    prepend(
      correlatedRows,
      el(
        "tr",
        { "data-testid": "stream-row", "data-cursor": id },
        el("td", {}, time(data.reporttime)),
        indicator,
        el("td", { className: "num" }, data.count ?? ""),
        el("td", {}, tags(data)),
      ),
    );
    return;
  }
  if (withdrawn) strike(data);
  prepend(
    liveRows,
    el(
      "tr",
      {
        "data-testid": withdrawn ? "stream-withdrawal" : "stream-row",
        "data-cursor": id,
        className: withdrawn ? "withdrawal" : "",
        dataset: { indicator: String(data.indicator ?? ""), provider: String(data.provider ?? "") },
      },
      el("td", {}, time(data.reporttime)),
      el("td", {}, data.itype),
      indicator,
      el("td", {}, data.provider),
      el("td", {}, withdrawn ? "withdrawn by its provider" : tags(data)),
      el("td", { className: "num" }, data.confidence ?? ""),
      el("td", {}, data.tlp ?? ""),
    ),
  );
}

function receive(frame) {
  switch (frame.type) {
    case "hello":
      setPlan(frame.plan, frame.limits);
      cursor ??= frame.cursor;
      retryDelay = 1000;
      refusals = 0;
      setState("live");
      break;
    case "indicator":
      cursor = frame.id;
      received += 1;
      thisSecond += 1;
      setCount("stream-received", received);
      show(frame.id, frame.data ?? {});
      break;
    case "withdrawn":
      cursor = frame.id;
      show(frame.id, frame.data ?? {}, true);
      break;
    case "dropped":
      dropped += frame.count ?? 0;
      cursor = frame.last_id ?? cursor;
      setCount("stream-dropped", dropped);
      break;
    case "reset":
      cursor = frame.cursor ?? null;
      notice(`Part of the stream is no longer available (${frame.reason}); continuing from the oldest your plan can see.`);
      break;
    default:
      break;
    case "plan":
      setPlan(frame.plan, frame.limits);
      notice(`Your plan is now ${frame.plan}; this stream follows its limits.`);
      break;
  }
}

async function connect() {
  clearTimeout(retryTimer);
  if (paused) return;
  setState("connecting…");
  let token;
  try {
    ({ token } = await api("POST", "/v1/session/stream-token"));
  } catch (error) {
    setState(`could not get a stream token: ${error.message}`);
    retry();
    return;
  }
  if (paused || socket) return;
  const params = new URLSearchParams(applied);
  params.set("access_token", token);
  if (cursor && replays) params.set("cursor", cursor);
  const mine = new WebSocket(`${websocketBase}/v1/stream?${params}`);
  socket = mine;
  let greeted = false;
  mine.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return; // Not JSON: nothing this viewer can show.
    }
    greeted = true;
    receive(frame);
  });
  mine.addEventListener("close", (event) => {
    if (socket !== mine) return;
    socket = null;
    if (paused) return;
    if (event.code === 4010) {
      setState("closed");
      notice("Your plan no longer allows this stream. See Plans.");
      return;
    }
    if (event.code === 4001) {
      // The page's stream token expired: a new one at once, from the cursor.
      setState("renewing the stream token…");
      connect();
      return;
    }
    if (!greeted) {
      refusals += 1;
      if (refusals >= MAX_REFUSALS) {
        setState("not connected");
        notice(
          "The stream refused this viewer. Check the filters, or whether your plan's streams are all in use " +
            "(a terminal streaming with a token counts too), then press Apply.",
        );
        return;
      }
    }
    setState("reconnecting…");
    retry();
  });
}

// Backoff doubling from 1 s to 30 s, each delay scaled by a random factor in [0.5, 1] ("equal
// jitter"): the viewers of a gateway that restarts do not all reconnect in the same instant.
function retry() {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, retryDelay * (0.5 + Math.random() / 2));
  retryDelay = Math.min(retryDelay * 2, 30000);
}

function disconnect() {
  const open = socket;
  socket = null;
  if (!open) return;
  // Closing a socket still connecting makes the browser log an error: close it once open.
  if (open.readyState === WebSocket.CONNECTING) {
    open.addEventListener("open", () => open.close(1000, "viewer paused"));
  } else {
    open.close(1000, "viewer paused");
  }
}

pauseButton.addEventListener("click", () => {
  paused = !paused;
  pauseButton.textContent = paused ? "Resume" : "Pause";
  if (paused) {
    clearTimeout(retryTimer);
    disconnect();
    setState("paused");
  } else {
    connect();
  }
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  showCommands();
  disconnect();
  applied = filters();
  cursor = null;
  refusals = 0;
  retryDelay = 1000;
  received = 0;
  dropped = 0;
  perSecond.fill(0);
  setCount("stream-received", 0);
  setCount("stream-dropped", 0);
  liveRows.replaceChildren();
  correlatedRows.replaceChildren();
  notice(null);
  connect();
});
form.addEventListener("input", showCommands);

for (const name of ["wscat", "curl"]) {
  $(`copy-${name}`).addEventListener("click", (event) => copy($(`copy-${name}-command`).textContent, event.currentTarget));
}

setInterval(() => {
  perSecond.push(thisSecond);
  perSecond.shift();
  thisSecond = 0;
  const recent = perSecond.slice(-10);
  const rate = recent.reduce((a, b) => a + b, 0) / recent.length;
  $("stream-rate").textContent = `${rate.toFixed(rate < 10 ? 1 : 0)}/s`;
  line(chart, perSecond);
}, 1000);

showCommands();
connect();
