// Cache: the hit ratio per model (from the usage counters, GET /admin/usage?by=model, when this
// gateway has them) and a purge by model, version and/or tenant (POST /admin/cache/purge).
import { ApiError, api, confirmAction, fill, frame, h, notAvailable, number, percent, poll, status, table } from "./common.js";

await frame("cache");
const content = document.getElementById("content");
const ratioBox = h("div", { id: "cache-ratio" });
const form = h(
  "form",
  { class: "inline", id: "purge-form" },
  h("label", {}, "model", h("input", { name: "model", id: "purge-model", placeholder: "(every model)" })),
  h("label", {}, "version", h("input", { name: "version", id: "purge-version", placeholder: "(every version)" })),
  h("label", {}, "tenant", h("input", { name: "tenant", id: "purge-tenant", placeholder: "(every tenant)" })),
  h("button", { type: "submit", class: "danger", id: "purge" }, "Purge"),
);
const result = h("p", { id: "purge-result", class: "muted" });
content.append(
  h("div", { class: "panel" }, h("h2", {}, "Hit ratio per model"), ratioBox),
  h("div", { class: "panel" }, h("h2", {}, "Purge cached answers"), form, result),
);

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const body = {};
  for (const name of ["model", "version", "tenant"]) if (data.get(name)) body[name] = data.get(name);
  const what = Object.entries(body).map(([k, v]) => `${k} ${v}`).join(", ") || "every model, version and tenant";
  if (!(await confirmAction(`Purge the cached answers of ${what}?`, "Purge"))) return;
  try {
    const answer = await api("POST", "/admin/cache/purge", body);
    result.textContent = `Purged ${answer.purged} entries (${answer.pattern}).`;
    status(null);
  } catch (error) {
    status(error);
  }
});

let available = true;

async function refresh() {
  if (!available) return;
  let data;
  try {
    data = await api("GET", "/admin/usage?by=model");
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && error.message.startsWith("no route")) {
      available = false;
      fill(ratioBox, notAvailable("The hit ratio (from GET /admin/usage)"));
      return;
    }
    throw error;
  }
  const models = new Map();
  for (const r of data.rows || []) {
    const m = models.get(r.model) || { requests: 0, hits: 0 };
    m.requests += r.requests;
    m.hits += r.cache_hits;
    models.set(r.model, m);
  }
  fill(
    ratioBox,
    table(
      ["model", ["requests", "num"], ["cache hits", "num"], ["hit ratio", "num"]],
      [...models.entries()].map(([model, m]) => [model, [number(m.requests), "num"], [number(m.hits), "num"], [percent(m.requests ? m.hits / m.requests : null, 1), "num"]]),
      { empty: "no requests in this period" },
    ),
  );
}

poll(refresh, 5000);
