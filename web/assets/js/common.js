// Shared by every page: the session values the server put in <meta>, JSON requests that carry
// the CSRF token, and DOM helpers. Values from the API or the stream reach the page only
// through textContent and properties (see `el`), never as markup.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";

export const account = meta("sluice-account");
const csrf = meta("sluice-csrf");

/// An HTTP error with the API's `{"error": …}` message.
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/// `method` on `path` with a JSON `body`; resolves to the parsed answer (null for 204).
/// Signed out meanwhile (401): back to the sign-in page.
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  // Signed out (the sign-in page) there is no session, so no CSRF token to send.
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (response.status === 204) return null;
  const answer = await response.json().catch(() => ({}));
  if (response.status === 401 && csrf) {
    location.assign("/signin");
  }
  if (!response.ok) {
    throw new ApiError(answer.error ?? `the server answered ${response.status}`, response.status);
  }
  return answer;
}

/// A new element: `attributes` set as properties (`className`, `dataset`, …) or, for names
/// with a dash, as attributes; `children` appended, strings as text nodes.
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.includes("-") || name === "role") element.setAttribute(name, value);
    else element[name] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/// Shows `error` (or hides the message when null) in the page's alert paragraph.
export function showError(error, scope = document) {
  const target = scope.querySelector(".error");
  if (!target) return;
  target.textContent = error ? error.message ?? String(error) : "";
  target.hidden = !error;
}

/// Copies `text`, and says so on `button` for a moment.
export async function copy(text, button) {
  button.dataset.label ??= button.textContent;
  const label = button.dataset.label;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy";
  }
  setTimeout(() => (button.textContent = label), 1500);
}

/// A date-time as the reader's local "YYYY-MM-DD HH:MM".
export function when(text) {
  if (!text) return "—";
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/// A count with thousands separators.
export const count = (n) => Number(n ?? 0).toLocaleString("en-US");

/// A plan's limits in one line.
export function describeLimits(limits) {
  const parts = [];
  parts.push(limits.firehose ? "full firehose" : `sample of ${limits.sample_per_second ?? 0}/s`);
  parts.push(limits.rate_per_second === null ? "no rate limit" : `${count(limits.rate_per_second)}/s per stream`);
  parts.push(`${count(limits.max_connections)} streams`);
  return parts.join(" · ");
}

// The header: who is signed in, and signing out.
if (account) {
  const who = document.querySelector(".who");
  who.querySelector('[data-testid="account-name"]').textContent = account;
  who.hidden = false;
  who.querySelector('[data-testid="signout"]').addEventListener("click", async () => {
    await api("POST", "/v1/session/signout").catch(() => {});
    location.assign("/signin");
  });
}
