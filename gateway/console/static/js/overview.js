// Overview: requests per second, error rate, p50 and p99 per model and version, live, from
// GET /admin/series (the fleet's merged series), and the backends' replicas from
// GET /admin/config.
import { TimeChart, align } from "./charts.js";
import { ApiError, api, fill, frame, h, notAvailable, number, percent, poll, table } from "./common.js";

await frame("overview");
const content = document.getElementById("content");
const cards = h("div", { class: "cards", id: "cards" });
const rpsBox = h("div", { class: "chart", id: "chart-rps" });
const errBox = h("div", { class: "chart", id: "chart-errors" });
const p50Box = h("div", { class: "chart", id: "chart-p50" });
const p99Box = h("div", { class: "chart", id: "chart-p99" });
const latest = h("div", { id: "latest" });
const backends = h("div", { id: "backends" });
const seriesPanel = h(
  "div",
  { id: "series" },
  cards,
  h(
    "div",
    { class: "grid" },
    h("div", { class: "panel" }, h("h2", {}, "Requests per second"), rpsBox),
    h("div", { class: "panel" }, h("h2", {}, "Error rate (5xx)"), errBox),
    h("div", { class: "panel" }, h("h2", {}, "p50 latency"), p50Box),
    h("div", { class: "panel" }, h("h2", {}, "p99 latency"), p99Box),
  ),
  h("div", { class: "panel" }, h("h2", {}, "Per model and version, last 15 minutes"), latest),
);
content.append(seriesPanel, h("div", { class: "panel" }, h("h2", {}, "Backends"), backends));

const msFormat = (v) => `${number(v, v < 10 ? 1 : 0)} ms`;
const charts = {
  rps: new TimeChart(rpsBox, { format: (v) => number(v, 1) }),
  errors: new TimeChart(errBox, { format: (v) => percent(v, 1) }),
  p50: new TimeChart(p50Box, { format: msFormat }),
  p99: new TimeChart(p99Box, { format: msFormat }),
};

const sum = (values) => values.reduce((a, b) => a + (b || 0), 0);
const last = (values) => {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
};

async function refreshSeries() {
  let data;
  try {
    data = await api("GET", "/admin/series?minutes=15");
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      fill(seriesPanel, notAvailable("The live series API (GET /admin/series)"));
      return false;
    }
    throw error;
  }
  const rows = data.series || [];
  // version null: answered before a version was chosen (a refused credential, an unknown pin)
  const label = (r) => (r.version === null ? `${r.model} (no version)` : `${r.model} v${r.version}`);
  for (const [name, key] of [
    ["rps", "rps"],
    ["errors", "error_rate"],
    ["p50", "p50_ms"],
    ["p99", "p99_ms"],
  ]) {
    const { times, series } = align(rows, (r) => r[key] || []);
    charts[name].update(
      times,
      rows.map((r, i) => ({ label: label(r), values: series[i] })),
    );
  }
  const requests = sum(rows.map((r) => sum(r.requests || [])));
  const errors = sum(rows.map((r) => sum(r.errors_5xx || [])));
  fill(
    cards,
    card("req/s now", number(sum(rows.map((r) => last(r.rps || []) || 0)), 1)),
    card("requests, 15 min", number(requests)),
    card("error rate, 15 min", percent(requests ? errors / requests : 0)),
    card("replicas", number(data.replicas ?? 1)),
  );
  fill(
    latest,
    table(
      ["model", "version", ["requests", "num"], ["req/s", "num"], ["5xx", "num"], ["4xx", "num"], ["error rate", "num"], ["p50", "num"], ["p99", "num"]],
      rows.map((r) => {
        const n = sum(r.requests || []);
        const e5 = sum(r.errors_5xx || []);
        return [
          r.model,
          r.version,
          [number(n), "num"],
          [number(last(r.rps || []), 2), "num"],
          [number(e5), "num"],
          [number(sum(r.errors_4xx || [])), "num"],
          [percent(n ? e5 / n : 0), "num"],
          [last(r.p50_ms || []) === null ? "–" : msFormat(last(r.p50_ms)), "num"],
          [last(r.p99_ms || []) === null ? "–" : msFormat(last(r.p99_ms)), "num"],
        ];
      }),
      { empty: "no traffic in the last 15 minutes" },
    ),
  );
  return true;
}

function card(label, value) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

async function refreshBackends() {
  const config = await api("GET", "/admin/config");
  const rows = [];
  for (const [name, backend] of Object.entries(config.backends || {})) {
    for (const replica of backend.replicas) {
      const ejected = replica.ejected_for > 0;
      rows.push([
        name,
        backend.kind,
        h("code", {}, replica.url),
        [number(replica.outstanding), "num"],
        h("span", { class: `badge ${ejected ? "bad" : replica.unready.length ? "warn" : "ok"}` }, ejected ? `ejected ${replica.ejected_for}s` : replica.unready.length ? `unready: ${replica.unready.join(", ")}` : "ready"),
      ]);
    }
  }
  fill(backends, table(["backend", "kind", "replica", ["in flight", "num"], "state"], rows, { empty: "no backends" }));
}

let seriesAvailable = true;
poll(async () => {
  if (seriesAvailable) seriesAvailable = await refreshSeries();
  await refreshBackends();
});
