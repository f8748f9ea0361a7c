// Tokens: create one (its value shown once), list them, revoke one.
import { api, copy, el, showError, when } from "./common.js";

const form = document.getElementById("create-token");
const created = document.getElementById("new-token");
const value = created.querySelector('[data-testid="token-value"]');
const body = document.querySelector("#tokens tbody");

function status(token) {
  if (token.revoked_at) return "revoked";
  if (token.expires_at && new Date(token.expires_at) <= new Date()) return "expired";
  return "active";
}

function row(token) {
  const state = status(token);
  const revoke = el(
    "button",
    { type: "button", className: "link danger", "data-testid": "token-revoke", "aria-label": `Revoke ${token.id}` },
    "Revoke",
  );
  revoke.addEventListener("click", async () => {
    revoke.disabled = true;
    try {
      await api("DELETE", `/v1/account/tokens/${encodeURIComponent(token.id)}`);
      await load();
    } catch (error) {
      showError(error);
      revoke.disabled = false;
    }
  });
  return el(
    "tr",
    { "data-testid": "token-row", "data-token-id": token.id },
    el("td", {}, el("code", {}, token.id)),
    el("td", {}, token.scope),
    el("td", {}, when(token.created_at)),
    el("td", {}, token.expires_at ? when(token.expires_at) : "never"),
    el("td", {}, when(token.last_used_at)),
    el("td", {}, el("span", { className: `badge ${state}` }, state)),
    el("td", {}, state === "active" ? revoke : null),
  );
}

async function load() {
  try {
    const { tokens } = await api("GET", "/v1/account/tokens");
    body.replaceChildren(...tokens.map(row));
    // Publishing tokens only for accounts an operator made publishers (they hold a live one).
    const publisher = tokens.some((token) => token.scope !== "read" && status(token) === "active");
    const write = form.querySelector('option[value="write"]');
    write.disabled = !publisher;
    write.textContent = publisher ? "write (stream and publish)" : "write (ask an operator to make this account a publisher)";
    if (!tokens.length) {
      body.append(el("tr", {}, el("td", { colSpan: 7, className: "empty" }, "No tokens yet.")));
    }
  } catch (error) {
    showError(error);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(null);
  const data = new FormData(form);
  const expires = data.get("expires");
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const answer = await api("POST", "/v1/account/tokens", {
      scope: data.get("scope"),
      expires_in_days: expires ? Number(expires) : null,
    });
    value.textContent = answer.token;
    created.hidden = false;
    await load();
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
  }
});

created.querySelector('[data-testid="token-copy"]').addEventListener("click", (event) =>
  copy(value.textContent, event.currentTarget),
);

load();
