// Usage: per tenant, requests and errors per day (chart) or per model / version (table), the
// quota used against the plan, and the same rows as CSV (GET /admin/usage).
import { TimeChart } from "./charts.js";
import { ApiError, api, fill, frame, h, notAvailable, number, percent, poll, table } from "./common.js";

await frame("usage");
const content = document.getElementById("content");
const params = new URLSearchParams(window.location.search);
const tenantSelect = h("select", { name: "tenant", id: "usage-tenant" }, h("option", { value: "" }, "every tenant"));
const form = h(
  "form",
  { class: "inline", id: "usage-form" },
  h("label", {}, "tenant", tenantSelect),
  h("label", {}, "model", h("input", { name: "model", id: "usage-model", value: params.get("model") || "" })),
  h("label", {}, "from", h("input", { name: "from", id: "usage-from", type: "date", value: params.get("from") || "" })),
  h("label", {}, "to", h("input", { name: "to", id: "usage-to", type: "date", value: params.get("to") || "" })),
  h(
    "label",
    {},
    "by",
    h("select", { name: "by", id: "usage-by" }, ["day", "model", "version"].map((b) => h("option", { value: b, selected: b === (params.get("by") || "day") }, b))),
  ),
  h("button", { type: "submit" }, "Show"),
);
const csv = h("a", { id: "usage-csv", href: "#" }, "Download CSV");
const chartBox = h("div", { class: "chart", id: "chart-usage" });
const chart = new TimeChart(chartBox, { stepped: true, format: (v) => number(v) });
const rowsBox = h("div", { id: "usage-rows" });
const quotaBox = h("div", { id: "usage-quota" });
const body = h(
  "div",
  { id: "usage-body" },
  h("div", { class: "panel", id: "usage-chart-panel" }, h("h2", {}, "Requests per day"), chartBox),
  h("div", { class: "panel" }, h("h2", {}, "Usage "), csv, rowsBox),
  h("div", { class: "panel" }, h("h2", {}, "Quota against the plan"), quotaBox),
);
content.append(h("div", { class: "panel" }, form), body);

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const query = query_();
  window.history.replaceState(null, "", `?${query}`);
  refresh();
});

function query_() {
  const data = new FormData(form);
  const query = new URLSearchParams();
  for (const [name, value] of data.entries()) if (value) query.set(name, value);
  return query.toString();
}

async function tenants() {
  const { tenants } = await api("GET", "/admin/tenants");
  const wanted = params.get("tenant") || "";
  for (const t of tenants) tenantSelect.append(h("option", { value: t.name, selected: t.name === wanted }, t.name));
}

let available = true;

async function refresh() {
  if (!available) return;
  const query = query_();
  let data;
  try {
    data = await api("GET", `/admin/usage?${query}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && error.message.startsWith("no route")) {
      available = false;
      fill(body, notAvailable("Per-tenant usage (GET /admin/usage)"));
      return;
    }
    throw error;
  }
  csv.setAttribute("href", `/admin/usage?${query}${query ? "&" : ""}format=csv`);
  const by = data.by;
  const rows = data.rows || [];
  document.getElementById("usage-chart-panel").classList.toggle("hidden", by !== "day");
  if (by === "day") {
    const days = [...new Set(rows.map((r) => r.day))].sort();
    const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
    const groups = [...new Set(rows.map((r) => `${r.tenant} · ${r.model}`))].sort();
    chart.update(
      xs,
      groups.map((g) => ({
        label: g,
        values: days.map((d) => rows.filter((r) => r.day === d && `${r.tenant} · ${r.model}` === g).reduce((a, r) => a + r.requests, 0)),
      })),
    );
  }
  const extra = by === "day" ? ["day"] : by === "version" ? ["version"] : [];
  fill(
    rowsBox,
    table(
      ["tenant", "model", ...extra, ["requests", "num"], ["4xx", "num"], ["5xx", "num"], ["cache hits", "num"], ["rate limited", "num"], ["bytes in", "num"], ["bytes out", "num"]],
      rows.map((r) => [
        r.tenant,
        r.model,
        ...extra.map((e) => r[e]),
        [number(r.requests), "num"],
        [number(r.errors_4xx), "num"],
        [number(r.errors_5xx), "num"],
        [number(r.cache_hits), "num"],
        [number(r.rate_limited), "num"],
        [number(r.bytes_in), "num"],
        [number(r.bytes_out), "num"],
      ]),
      { empty: "no usage in this period" },
    ),
  );
  fill(
    quotaBox,
    table(
      ["tenant", "plan", "window", ["used", "num"], ["limit", "num"], ["share", "num"]],
      (data.quota || []).map((q) => [q.tenant, q.plan ?? "–", q.window, [number(q.used), "num"], [number(q.limit), "num"], [percent(q.limit ? q.used / q.limit : null, 1), "num"]]),
      { empty: "no quota on these tenants' plans" },
    ),
  );
}

await tenants();
poll(refresh, 5000);
