// Webhooks: register an endpoint (its secret shown once), list them with how delivery stands,
// read one's delivery log, delete one.
import { api, copy, el, showError, when } from "./common.js";

const form = document.getElementById("create-webhook");
const created = document.getElementById("new-webhook");
const secret = created.querySelector('[data-testid="webhook-secret"]');
const body = document.querySelector("#webhooks tbody");
const log = document.getElementById("deliveries");
const logBody = log.querySelector("tbody");
let shown = null;

function status(webhook) {
  if (webhook.last_error) return { text: webhook.last_error, state: "revoked" };
  if (webhook.last_success_at) return { text: "delivering", state: "active" };
  return { text: "waiting for indicators", state: "expired" };
}

function button(label, testid, webhook, className = "link") {
  return el("button", { type: "button", className, "data-testid": testid, "aria-label": `${label} ${webhook.url}` }, label);
}

function row(webhook) {
  const { text, state } = status(webhook);
  const remove = button("Delete", "webhook-delete", webhook, "link danger");
  remove.addEventListener("click", async () => {
    remove.disabled = true;
    try {
      await api("DELETE", `/v1/account/webhooks/${encodeURIComponent(webhook.id)}`);
      if (shown?.id === webhook.id) {
        shown = null;
        log.hidden = true;
      }
      await load();
    } catch (error) {
      showError(error);
      remove.disabled = false;
    }
  });
  const open = button("Log", "webhook-log", webhook);
  open.addEventListener("click", () => {
    shown = webhook;
    loadLog();
  });
  return el(
    "tr",
    { "data-testid": "webhook-row", "data-webhook-id": webhook.id },
    el("td", {}, el("code", {}, webhook.url)),
    el("td", {}, webhook.filter ? el("code", {}, webhook.filter) : "everything"),
    el("td", {}, webhook.format),
    el("td", { "data-testid": "webhook-last-success" }, when(webhook.last_success_at)),
    el("td", {}, el("span", { className: `badge ${state}`, "data-testid": "webhook-status" }, text)),
    el("td", {}, open, " ", remove),
  );
}

async function load() {
  try {
    const { webhooks } = await api("GET", "/v1/account/webhooks");
    body.replaceChildren(...webhooks.map(row));
    if (!webhooks.length) {
      body.append(el("tr", {}, el("td", { colSpan: 6, className: "empty" }, "No endpoints yet.")));
    }
  } catch (error) {
    showError(error);
  }
}

async function loadLog() {
  const target = shown;
  if (!target) return;
  try {
    const { deliveries } = await api("GET", `/v1/account/webhooks/${encodeURIComponent(target.id)}/deliveries?limit=50`);
    // Another endpoint's log was asked for (or this one deleted) meanwhile: that answer wins.
    if (shown !== target) return;
    log.querySelector('[data-testid="deliveries-url"]').textContent = target.url;
    logBody.replaceChildren(
      ...deliveries.map((delivery) =>
        el(
          "tr",
          { "data-testid": "delivery-row" },
          el("td", {}, when(delivery.at)),
          el("td", { "data-testid": "delivery-outcome" }, delivery.outcome.replace("_", " ")),
          el("td", {}, delivery.attempt || "—"),
          el("td", {}, delivery.indicators),
          el("td", {}, delivery.error ?? (delivery.http_status ? `HTTP ${delivery.http_status}` : "")),
        ),
      ),
    );
    if (!deliveries.length) {
      logBody.append(el("tr", {}, el("td", { colSpan: 5, className: "empty" }, "Nothing delivered yet.")));
    }
    log.hidden = false;
  } catch (error) {
    showError(error);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(null);
  const data = new FormData(form);
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const answer = await api("POST", "/v1/account/webhooks", {
      url: data.get("url"),
      filter: data.get("filter"),
      format: data.get("format"),
    });
    secret.textContent = answer.secret;
    created.hidden = false;
    form.reset();
    await load();
  } catch (error) {
    showError(error);
  } finally {
    submit.disabled = false;
  }
});

created.querySelector('[data-testid="webhook-secret-copy"]').addEventListener("click", (event) =>
  copy(secret.textContent, event.currentTarget),
);

load();
// How delivery stands changes by itself: look again every few seconds while the page is open.
setInterval(() => {
  if (document.visibilityState !== "visible") return;
  load();
  loadLog();
}, 3000);
