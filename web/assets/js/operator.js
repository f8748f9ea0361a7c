// Operators: the cluster's open streams (GET /v1/admin/connections with an admin token kept
// in memory only), refreshed every 2 s, with a close button per stream.
import { count, el, showError, when } from "./common.js";

const form = document.getElementById("operator-token");
const body = document.querySelector("#operator-streams tbody");
const summary = document.querySelector('[data-testid="operator-summary"]');
let token = null;
let timer = null;

async function admin(method, path) {
  const response = await fetch(path, {
    method,
    headers: { Accept: "application/json", Authorization: `Bearer ${token}` },
    credentials: "omit",
  });
  if (response.status === 204) return null;
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error ?? `the server answered ${response.status}`);
  return answer;
}

function behind(lag) {
  const text = `${lag.seconds.toFixed(1)} s` + (lag.entries === null ? "" : ` · ${count(lag.entries)} entries`);
  return el(
    "span",
    { className: lag.near_retention ? "badge revoked" : "", "data-testid": "operator-lag" },
    lag.near_retention ? `${text} · near retention` : text,
  );
}

function row(connection) {
  const close = el(
    "button",
    { type: "button", className: "link danger", "data-testid": "operator-close", "aria-label": `Close ${connection.id}` },
    "Close",
  );
  close.addEventListener("click", async () => {
    close.disabled = true;
    try {
      await admin("DELETE", `/v1/admin/connections/${encodeURIComponent(connection.id)}`);
      await load();
    } catch (error) {
      showError(error);
      close.disabled = false;
    }
  });
  return el(
    "tr",
    { "data-testid": "operator-row", "data-connection-id": connection.id },
    el("td", {}, el("code", {}, connection.id)),
    el("td", {}, connection.node),
    el("td", { "data-testid": "operator-row-account" }, connection.account),
    el("td", {}, connection.plan),
    el("td", {}, `${connection.transport}/${connection.dialect}`),
    el("td", {}, connection.remote ?? "—"),
    el("td", {}, when(connection.connected_at)),
    el("td", {}, count(connection.delivered)),
    el("td", {}, count(connection.dropped)),
    el("td", {}, behind(connection.lag)),
    el("td", {}, close),
  );
}

async function load() {
  if (!token) return;
  const data = new FormData(form);
  const query = new URLSearchParams({ sort: data.get("sort"), limit: "1000" });
  const account = String(data.get("account") ?? "").trim();
  if (account) query.set("account", account);
  try {
    const answer = await admin("GET", `/v1/admin/connections?${query}`);
    showError(null);
    body.replaceChildren(...answer.connections.map(row));
    const where = answer.scope === "cluster" ? `${answer.nodes.length} node(s)` : `node ${answer.node} (this node's only)`;
    const more = answer.next ? " (the first 1,000)" : "";
    const truncated = answer.truncated ? `; ${count(answer.truncated)} more not in the nodes' snapshots` : "";
    summary.textContent = `${count(answer.connections.length)} stream(s)${more} on ${where}${truncated}, as of ${new Date().toLocaleTimeString()}`;
    if (!answer.connections.length) {
      body.append(el("tr", {}, el("td", { colSpan: 11, className: "empty" }, "No streams open.")));
    }
  } catch (error) {
    showError(error);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  token = String(new FormData(form).get("token") ?? "").trim();
  load();
  clearInterval(timer);
  timer = setInterval(() => {
    if (document.visibilityState === "visible") load();
  }, 2000);
});
