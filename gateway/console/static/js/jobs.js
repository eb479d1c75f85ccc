// Jobs: the queue's depth, the newest jobs of every tenant and the dead letters
// (GET /admin/jobs/depth, /admin/jobs, /admin/jobs/dead).
import { ApiError, api, fill, frame, h, number, poll, table, time } from "./common.js";

await frame("jobs");
const content = document.getElementById("content");
const depthBox = h("div", { class: "cards", id: "job-depth" });
const jobsBox = h("div", { id: "job-list" });
const deadBox = h("div", { id: "job-dead" });
const filter = h(
  "select",
  { id: "job-status" },
  ["", "queued", "running", "succeeded", "failed", "cancelled"].map((s) => h("option", { value: s }, s || "every status")),
);
filter.addEventListener("change", () => refresh());
content.append(
  depthBox,
  h("div", { class: "panel" }, h("h2", {}, "Recent jobs "), h("label", {}, "status", filter), jobsBox),
  h("div", { class: "panel" }, h("h2", {}, "Dead letters"), deadBox),
);

const STATUS_CLASS = { succeeded: "ok", running: "warn", queued: "", failed: "bad", cancelled: "bad" };

async function refresh() {
  const query = filter.value ? `&status=${filter.value}` : "";
  const [jobs, dead, depth] = await Promise.all([
    api("GET", `/admin/jobs?limit=50${query}`),
    api("GET", "/admin/jobs/dead?limit=50"),
    api("GET", "/admin/jobs/depth").catch((error) => {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }),
  ]);
  fill(
    depthBox,
    depth === null
      ? []
      : [h("div", { class: "card" }, h("div", { class: "label" }, "queued, every model"), h("div", { class: "value", id: "depth-total" }, number(Object.values(depth.depth).reduce((a, b) => a + b, 0))))].concat(Object.entries(depth.depth).map(([name, n]) =>
          h("div", { class: "card" }, h("div", { class: "label" }, `queued: ${name}`), h("div", { class: "value" }, number(n))),
        )),
  );
  fill(
    jobsBox,
    table(
      ["id", "tenant", "model", "version", "status", ["attempts", "num"], "created", "finished", "error"],
      jobs.jobs.map((j) => [
        h("code", {}, j.id),
        j.tenant ?? "–",
        j.model,
        j.version ?? "–",
        h("span", { class: `badge ${STATUS_CLASS[j.status] ?? ""}` }, j.status),
        [number(j.attempts), "num"],
        time(j.created_at),
        time(j.finished_at),
        j.error ? `${j.error_status}: ${j.error.error ?? JSON.stringify(j.error)}` : "",
      ]),
      { empty: "no jobs" },
    ),
  );
  fill(
    deadBox,
    table(
      Object.keys(dead.dead[0] || { id: 0 }),
      dead.dead.map((d) => Object.values(d).map((v) => (typeof v === "number" && v > 1e9 ? time(v) : typeof v === "object" ? JSON.stringify(v) : String(v ?? "–")))),
      { empty: "no dead letters" },
    ),
  );
}

poll(refresh);
