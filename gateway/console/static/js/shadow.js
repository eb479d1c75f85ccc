// Shadow traffic: per model and shadow version, how often the shadow agreed with the primary
// and how much slower or faster it answered (GET /admin/shadow; this worker process's counts).
import { api, fill, frame, h, ms, number, percent, poll, table } from "./common.js";

await frame("shadow");
const content = document.getElementById("content");
const configured = h("div", { id: "shadow-configured" });
const figures = h("div", { id: "shadow-figures" });
content.append(
  h("div", { class: "panel" }, h("h2", {}, "Configured in routes.yaml"), configured),
  h("div", { class: "panel" }, h("h2", {}, "Agreement and latency"), figures, h("p", { class: "legend" }, "Counts of every live replica, summed (the others as of their last publish, a few seconds behind); Prometheus has gateway_shadow_*.")),
);

async function refresh() {
  const report = await api("GET", "/admin/shadow");
  fill(
    configured,
    table(
      ["model", "shadow version", ["share mirrored", "num"]],
      Object.entries(report.configured).map(([model, c]) => [model, c.version, [percent(c.share, 0), "num"]]),
      { empty: "no model has a shadow: version in routes.yaml" },
    ),
  );
  const rows = [];
  for (const [model, versions] of Object.entries(report.models)) {
    for (const [version, s] of Object.entries(versions)) {
      const compared = s.numeric_agreements + s.numeric_disagreements;
      rows.push([
        model,
        version,
        [number(s.primary_requests), "num"],
        [number(s.mirrored), "num"],
        [number(s.completed), "num"],
        [percent(compared ? s.numeric_agreements / compared : null), "num"],
        [percent(compared ? s.exact_matches / compared : null), "num"],
        [percent(s.shadow_error_rate), "num"],
        [s.mean_latency_delta_seconds === null ? "–" : (s.mean_latency_delta_seconds >= 0 ? "+" : "") + ms(s.mean_latency_delta_seconds), "num"],
        [number(s.dropped), "num"],
      ]);
    }
  }
  fill(
    figures,
    table(
      ["model", "shadow", ["primary requests", "num"], ["mirrored", "num"], ["compared", "num"], ["agreement", "num"], ["exact", "num"], ["shadow errors", "num"], ["latency delta", "num"], ["dropped", "num"]],
      rows,
      { empty: "nothing mirrored yet" },
    ),
  );
}

poll(refresh);
