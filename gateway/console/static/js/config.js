// Config: the live routes.yaml and the last reload's status and errors; a pasted file checked
// and diffed against the live one before anyone applies it (POST /admin/config/check, what
// `gateway check --against` does); reload now (POST /admin/config/reload).
import { ApiError, api, confirmAction, fill, frame, h, poll, status, table, time } from "./common.js";

await frame("config");
const content = document.getElementById("content");
const statusBox = h("div", { id: "reload-status" });
const source = h("pre", { id: "live-yaml" }, "…");
const pasted = h("textarea", { id: "candidate", spellcheck: "false", placeholder: "Paste a routes.yaml here to check it against the live one." });
const checkButton = h("button", { id: "check" }, "Check and diff");
const reloadButton = h("button", { class: "secondary", id: "reload" }, "Reload routes.yaml now");
const verdict = h("div", { id: "check-result" });
content.append(
  h("div", { class: "panel" }, h("h2", {}, "Last reload"), statusBox, h("div", { class: "actions" }, reloadButton)),
  h("div", { class: "grid" },
    h("div", { class: "panel" }, h("h2", {}, "Live routes.yaml"), source),
    h("div", { class: "panel" }, h("h2", {}, "Check a new file"), pasted, h("div", { class: "actions" }, checkButton), verdict),
  ),
);

const badge = (ok) => h("span", { class: `badge ${ok ? "ok" : "bad"}`, id: "reload-ok" }, ok ? "applied" : "rejected");

async function refresh() {
  const config = await api("GET", "/admin/config");
  const s = config.status;
  fill(
    statusBox,
    table(
      null,
      [
        ["result", badge(s.last_ok)],
        ["file", h("code", {}, s.source)],
        ["digest", h("code", {}, s.digest)],
        ["loaded", time(s.loaded_at)],
        ["last attempt", `${time(s.last_attempt_at)} (${s.last_trigger})`],
        ["reloads", String(s.reloads)],
        ["errors", s.last_errors.length ? h("ul", { id: "reload-errors" }, s.last_errors.map((e) => h("li", { class: "fail" }, e))) : "none"],
        ["changes", s.last_changes.length ? h("ul", {}, s.last_changes.map((c) => h("li", {}, c))) : "none"],
      ],
    ),
  );
  try {
    source.textContent = await api("GET", "/admin/config/source", undefined, { raw: true });
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    source.textContent = "(the live file's text is not available on this gateway)";
  }
}

checkButton.addEventListener("click", async () => {
  try {
    const result = await api("POST", "/admin/config/check", pasted.value, { type: "application/yaml" });
    const parts = [h("p", {}, h("span", { class: `badge ${result.ok ? "ok" : "bad"}`, id: "check-ok" }, result.ok ? "valid" : "invalid"), " ", result.summary || "")];
    if (result.errors.length) parts.push(h("ul", { id: "check-errors" }, result.errors.map((e) => h("li", { class: "fail" }, e))));
    if (result.ok) {
      parts.push(h("h3", {}, result.changes.length ? "What would change" : "No changes against the live table"));
      if (result.changes.length) parts.push(h("ul", { id: "check-changes" }, result.changes.map((c) => h("li", {}, c))));
      if (result.diff) {
        parts.push(h("h3", {}, "Line diff against the live file"));
        parts.push(
          h(
            "pre",
            { id: "check-diff" },
            result.diff.split("\n").map((line) => h("span", { class: line.startsWith("+") ? "diff-add" : line.startsWith("-") ? "diff-del" : null }, `${line}\n`)),
          ),
        );
      }
    }
    fill(verdict, parts);
    status(null);
  } catch (error) {
    status(error);
  }
});

reloadButton.addEventListener("click", async () => {
  if (!(await confirmAction("Reload routes.yaml from its file now? An invalid file is rejected and the live table stays.", "Reload"))) return;
  try {
    await api("POST", "/admin/config/reload");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 422)) status(error);
  }
  await refresh();
});

poll(refresh, 5000);
