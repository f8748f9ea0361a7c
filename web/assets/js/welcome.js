// The sign-up and sign-in forms.
import { api, ApiError, showError } from "./common.js";

async function submit(form, path, body, next) {
  showError(null, form);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api("POST", path, body);
    location.assign(next);
  } catch (error) {
    showError(error instanceof ApiError ? error : new Error(`could not reach Sluice: ${error.message}`), form);
  } finally {
    button.disabled = false;
  }
}

// Session cookies are `Secure`: over plain HTTP a browser keeps them only for localhost.
const local = ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname);
const secure = document.querySelector('meta[name="sluice-cookies"]')?.content !== "insecure";
if (secure && location.protocol === "http:" && !local) {
  const warning = document.createElement("p");
  warning.className = "notice";
  warning.setAttribute("role", "status");
  warning.textContent =
    "This page is served over plain HTTP, so your browser will not keep the sign-in cookie. " +
    "Use HTTPS, or start Sluice with --insecure-cookies for a trial on a private network.";
  document.querySelector("main").prepend(warning);
}

const signup = document.getElementById("signup");
signup.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(signup);
  const body = { email: data.get("email"), password: data.get("password") };
  const name = String(data.get("account") ?? "").trim();
  if (name) body.account = name;
  submit(signup, "/v1/session/signup", body, "/plans");
});

const signin = document.getElementById("signin");
signin.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(signin);
  submit(signin, "/v1/session/signin", { email: data.get("email"), password: data.get("password") }, "/live");
});
