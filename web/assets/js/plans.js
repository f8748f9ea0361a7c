// Plans: the current plan, every plan with its price and limits, and a subscribe switch per
// plan. Switching a plan on subscribes to it; switching the current paid plan off goes back to
// free. In billing test mode the change applies at once; with a payment provider the server
// answers where to pay, and the provider's webhook changes the plan; with neither, its 409 says
// that an admin changes plans (shown as the error).
import { api, count, el, showError } from "./common.js";

const current = document.querySelector('[data-testid="plan-current"]');
const list = document.getElementById("plans");
let plans = [];
let mine = null;
let busy = false;
// Bumped by every choice, so a poll answered after a choice cannot bring back the old plan.
let choices = 0;

function price(plan) {
  if (plan.price_cents === null) return "contract";
  if (plan.price_cents === 0) return "$0";
  return `$${(plan.price_cents / 100).toFixed(plan.price_cents % 100 ? 2 : 0)}/month`;
}

function replay(seconds) {
  if (!seconds) return "no replay";
  return seconds % 3600 === 0 ? `${seconds / 3600} h replay` : `${Math.round(seconds / 60)} min replay`;
}

function limitItems(plan) {
  return [
    plan.firehose ? "full firehose" : `sample of ${plan.sample_per_second ?? 0} indicator/s`,
    plan.rate_per_second === null
      ? "no rate limit"
      : `${count(plan.rate_per_second)}/s per stream (burst ${count(plan.burst)})`,
    `${count(plan.max_connections)} concurrent ${plan.max_connections === 1 ? "stream" : "streams"}`,
    replay(plan.replay_window_seconds),
    `TLP up to ${plan.max_tlp}`,
    plan.correlated ? "correlated stream" : "no correlated stream",
  ];
}

function render() {
  current.textContent = mine?.plan ?? "…";
  list.replaceChildren(
    ...plans.map((plan) => {
      const on = plan.name === mine?.plan;
      const contract = plan.price_cents === null;
      const switchable = !busy && !contract && !(on && plan.name === "free");
      const toggle = el(
        "button",
        {
          type: "button",
          className: "switch",
          role: "switch",
          "aria-checked": String(on),
          "data-testid": `plan-select-${plan.name}`,
          disabled: !switchable,
        },
        el("span", { className: "knob" }),
        on ? "Subscribed" : contract ? "Contact us" : "Subscribe",
        el("span", { className: "visually-hidden" }, ` to ${plan.name}`),
      );
      toggle.addEventListener("click", () => choose(on ? "free" : plan.name));
      return el(
        "article",
        { className: on ? "plan card current" : "plan card", "data-plan": plan.name },
        el("h2", {}, plan.name),
        el("p", { className: "price" }, price(plan)),
        el("ul", {}, ...limitItems(plan).map((item) => el("li", {}, item))),
        toggle,
      );
    }),
  );
}

async function choose(name) {
  choices += 1;
  busy = true;
  render();
  showError(null);
  try {
    const answer = await api("PUT", "/v1/account/subscription", { plan: name });
    if (answer.checkout_url) {
      location.assign(answer.checkout_url);
      return;
    }
    mine = answer;
  } catch (error) {
    showError(error);
  } finally {
    busy = false;
    render();
  }
}

async function load() {
  try {
    const [catalog, account] = await Promise.all([api("GET", "/v1/plans"), api("GET", "/v1/account")]);
    plans = catalog.plans;
    mine = account;
    showError(null);
  } catch (error) {
    showError(error);
  }
  render();
}

load();
// A plan changed elsewhere (the billing provider, an admin) shows up here within seconds.
setInterval(() => {
  if (!busy && document.visibilityState === "visible") {
    const asked = choices;
    api("GET", "/v1/account")
      .then((account) => {
        if (asked === choices && !busy && account.plan !== mine?.plan) {
          mine = account;
          render();
        }
      })
      .catch(() => {});
  }
}, 5000);
