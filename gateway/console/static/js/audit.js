// Audit log: who did what, when, newest first (GET /admin/audit). Never a secret.
import { api, fill, frame, h, poll, table, time } from "./common.js";

await frame("audit");
const content = document.getElementById("content");
const entries = h("div", { id: "audit-entries" });
content.append(h("div", { class: "panel" }, entries));

async function refresh() {
  const log = await api("GET", "/admin/audit?limit=200");
  fill(
    entries,
    table(
      ["at", "actor", "action", "target", "detail", "request id"],
      log.entries.map((e) => [
        time(e.at),
        e.actor,
        h("code", {}, e.action),
        e.target,
        Object.entries(e.detail || {}).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" "),
        h("code", { class: "muted" }, e.request_id ?? "–"),
      ]),
      { empty: "nothing audited yet" },
    ),
  );
}

poll(refresh);
