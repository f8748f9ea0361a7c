// Usage: the metering behind invoices, per day, as a chart and a table.
import { account, api, count, el, showError } from "./common.js";
import { bars } from "./chart.js";

document.getElementById("usage-account").textContent = account;

/// Every day from `from` to `to` (YYYY-MM-DD, UTC), inclusive.
function days(from, to) {
  const out = [];
  for (let day = new Date(`${from}T00:00:00Z`); day <= new Date(`${to}T00:00:00Z`); day.setUTCDate(day.getUTCDate() + 1)) {
    out.push(day.toISOString().slice(0, 10));
  }
  return out;
}

async function load() {
  try {
    const usage = await api("GET", "/v1/account/usage");
    // The figures are read once: say when, so a stale page is not taken for a lagging meter.
    const loaded = new Date();
    const stamp = document.getElementById("usage-loaded");
    stamp.dateTime = loaded.toISOString();
    stamp.textContent = `${loaded.toISOString().slice(11, 19)} UTC`;
    const byDay = new Map(usage.days.map((day) => [day.day, day]));
    const range = days(usage.from, usage.to);
    const canvas = document.getElementById("usage-chart");
    const draw = () =>
      bars(
        canvas,
        range.map((day) => day.slice(5)),
        [range.map((day) => byDay.get(day)?.delivered ?? 0), range.map((day) => byDay.get(day)?.dropped ?? 0)],
        ["--accent", "--warn"],
      );
    draw();
    window.addEventListener("resize", draw);
    const body = document.querySelector("#usage tbody");
    const rows = [...usage.days].reverse().map((day) =>
      el(
        "tr",
        { "data-testid": "usage-row" },
        el("td", {}, day.day),
        el("td", { className: "num" }, count(day.delivered)),
        el("td", { className: "num" }, count(day.dropped)),
        el("td", { className: "num" }, count(day.bytes)),
        el("td", { className: "num" }, count(day.connections)),
        el("td", { className: "num" }, count(day.peak_connections)),
      ),
    );
    body.replaceChildren(...rows);
    if (!rows.length) body.append(el("tr", {}, el("td", { colSpan: 6, className: "empty" }, "Nothing streamed yet.")));
  } catch (error) {
    showError(error);
  }
}

load();
