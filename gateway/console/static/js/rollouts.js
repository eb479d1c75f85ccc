// Rollouts: every progressive rollout; for the chosen model its weights over time (from its
// events), each gate figure against its threshold, its events, and pause / resume / promote /
// abort, each confirmed first (POST /admin/rollouts/{model}/{action}).
import { TimeChart } from "./charts.js";
import { api, confirmAction, fill, frame, h, ms, number, percent, poll, status, table, time } from "./common.js";

await frame("rollouts");
const content = document.getElementById("content");
const listBox = h("div", { id: "rollout-list" });
const detail = h("div", { id: "rollout-detail" });
content.append(h("div", { class: "panel" }, h("h2", {}, "Rollouts"), listBox), detail);

let chosen = new URLSearchParams(window.location.search).get("model");
const weightsBox = h("div", { class: "chart", id: "chart-weights" });
const weights = new TimeChart(weightsBox, { stepped: true, format: (v) => `${number(v)} %`, min: 0, max: 100 });
const head = h("div", { id: "rollout-head" });
const gates = h("div", { id: "gates" });
const eventsBox = h("div", { id: "events" });
const buttons = h("div", { class: "actions", id: "rollout-actions" });
detail.append(
  h("div", { class: "panel" }, head, buttons),
  h("div", { class: "grid" },
    h("div", { class: "panel" }, h("h2", {}, "Weights over time"), weightsBox),
    h("div", { class: "panel" }, h("h2", {}, "Gates, this step"), gates),
  ),
  h("div", { class: "panel" }, h("h2", {}, "Events"), eventsBox),
);

const STATUS_CLASS = { running: "ok", completed: "ok", paused: "warn", pending: "warn", rolled_back: "bad", aborted: "bad" };
const badge = (s) => h("span", { class: `badge ${STATUS_CLASS[s] || ""}`, "data-status": s }, s.replace("_", " "));
const ACTIONS = [
  ["pause", "Pause", "secondary", "Pause the rollout? The canary keeps its current share."],
  ["resume", "Resume", "secondary", "Resume the rollout? The step's interval starts again."],
  ["promote", "Promote", "secondary", "Promote the canary to the next step now, without waiting for the gates?"],
  ["abort", "Abort", "danger", "Abort the rollout? All traffic goes back to the stable version at once."],
];

async function refresh() {
  const { rollouts } = await api("GET", "/admin/rollouts");
  if (!chosen && rollouts.length) chosen = rollouts[0].model;
  fill(
    listBox,
    table(
      ["model", "status", "canary", "stable", ["share", "num"], "reason"],
      rollouts.map((r) => [
        h("a", { href: `?model=${encodeURIComponent(r.model)}`, "data-model": r.model, onclick: (e) => choose(e, r.model) }, r.model),
        badge(r.status),
        r.canary ?? r.plan?.canary ?? "–",
        r.stable ?? r.plan?.stable ?? "–",
        [r.share === undefined ? "–" : `${number(r.share)} %`, "num"],
        r.reason ?? "",
      ]),
      { empty: "no rollouts: declare one under a model's rollout: in routes.yaml", rowAttrs: (i) => (rollouts[i].model === chosen ? { class: "selected" } : {}) },
    ),
  );
  if (!chosen) {
    detail.classList.add("hidden");
    return;
  }
  detail.classList.remove("hidden");
  const [state, log] = await Promise.all([
    api("GET", `/admin/rollouts/${encodeURIComponent(chosen)}`),
    api("GET", `/admin/rollouts/${encodeURIComponent(chosen)}/events?limit=200`),
  ]);
  showState(state);
  showEvents(state, log.events);
}

function choose(event, model) {
  event.preventDefault();
  chosen = model;
  window.history.replaceState(null, "", `?model=${encodeURIComponent(model)}`);
  refresh().catch(status);
}

/** Whether ``action`` can change a rollout in ``status`` (the API answers 409 otherwise). */
function allowed(status, action) {
  const active = status === "running" || status === "paused";
  if (action === "pause") return status === "running";
  if (action === "resume") return status === "paused" || status === "rolled_back" || status === "aborted";
  return active;
}

function showState(state) {
  fill(
    head,
    h("h2", {}, `${state.model} `, badge(state.status)),
    h("p", { class: "muted", id: "rollout-reason" }, state.reason || (state.declared ? "declared in routes.yaml" : "")),
    h("p", {}, `canary ${state.canary ?? "–"} · stable ${state.stable ?? "–"} · step ${state.step === undefined ? "–" : state.step + 1} of ${state.steps ? state.steps.length : "–"} · applied here: ${state.applied_weights ? Object.entries(state.applied_weights).map(([v, w]) => `${v}=${number(w)}%`).join(", ") : "–"}`),
  );
  fill(
    buttons,
    ACTIONS.map(([action, label, cls, question]) =>
      h("button", { class: cls, id: `action-${action}`, "data-action": action, disabled: !allowed(state.status, action), onclick: () => command(state.model, action, question, label) }, label),
    ),
  );
  const plan = state.plan?.gates;
  const figures = state.figures || {};
  const canary = figures[state.canary] || {};
  const stable = figures[state.stable] || {};
  if (!plan) {
    fill(gates, h("p", { class: "muted" }, "no gates: the rollout is no longer in routes.yaml"));
    return;
  }
  const rows = [];
  const verdict = (ok) => (ok === null ? h("span", { class: "muted" }, "–") : h("span", { class: ok ? "pass" : "fail" }, ok ? "pass" : "fail"));
  const enough = (canary.requests || 0) >= plan.min_requests;
  rows.push(["canary requests", [number(canary.requests || 0), "num"], [`≥ ${number(plan.min_requests)}`, "num"], verdict(enough)]);
  rows.push(["canary error rate", [percent(canary.error_rate ?? 0), "num"], [`≤ ${percent(plan.max_error_rate)}`, "num"], verdict(enough ? (canary.error_rate ?? 0) <= plan.max_error_rate : null)]);
  if (plan.max_p99 !== null && plan.max_p99 !== undefined) {
    rows.push(["canary p99", [ms(canary.p99), "num"], [`≤ ${ms(plan.max_p99)}`, "num"], verdict(canary.p99 === null || canary.p99 === undefined ? null : canary.p99 <= plan.max_p99)]);
  }
  if (plan.max_p99_ratio !== null && plan.max_p99_ratio !== undefined) {
    const ratio = canary.p99 && stable.p99 ? canary.p99 / stable.p99 : null;
    rows.push(["canary p99 / stable p99", [ratio === null ? "–" : number(ratio, 2), "num"], [`≤ ${number(plan.max_p99_ratio, 2)}`, "num"], verdict(ratio === null ? null : ratio <= plan.max_p99_ratio)]);
  }
  rows.push(["stable requests", [number(stable.requests || 0), "num"], ["", "num"], ""]);
  rows.push(["stable error rate", [percent(stable.error_rate ?? 0), "num"], ["", "num"], ""]);
  fill(gates, table(["figure", ["value", "num"], ["threshold", "num"], "gate"], rows));
}

function showEvents(state, events) {
  const ordered = [...events].reverse(); // oldest first
  const versions = [...new Set(ordered.flatMap((e) => Object.keys(e.weights || {})))].sort();
  if (ordered.length) {
    const xs = ordered.map((e) => e.at);
    const now = Date.now() / 1000;
    xs.push(now);
    const series = versions.map((v) => {
      const values = ordered.map((e) => (e.weights && v in e.weights ? e.weights[v] : 0));
      values.push(values[values.length - 1]);
      return { label: `version ${v}`, values };
    });
    weights.update(xs, series);
  }
  fill(
    eventsBox,
    table(
      ["at", "from", "to", "step", "weights", "reason"],
      events.map((e) => [
        time(e.at),
        e.from ?? "–",
        e.to,
        e.step === undefined ? "–" : e.step + 1,
        Object.entries(e.weights || {}).map(([v, w]) => `${v}=${number(w)}%`).join(" "),
        e.reason,
      ]),
      { empty: "no events yet" },
    ),
  );
}

async function command(model, action, question, label) {
  if (!(await confirmAction(`${model}: ${question}`, label))) return;
  try {
    const state = await api("POST", `/admin/rollouts/${encodeURIComponent(model)}/${action}`);
    showState(state);
    status(null);
  } catch (error) {
    status(error);
  }
  await refresh();
}

poll(refresh);
