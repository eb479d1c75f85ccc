// Tenants and keys: create a tenant; a tenant's keys: create (the key shown once, with a copy
// button), rotate with a grace period, revoke. Everything through /admin/tenants and /admin/keys.
import { api, confirmAction, fill, frame, h, list, poll, status, table, time } from "./common.js";

await frame("tenants");
const content = document.getElementById("content");
let chosen = new URLSearchParams(window.location.search).get("tenant");

const tenantForm = h(
  "form",
  { class: "inline", id: "tenant-form" },
  h("label", {}, "name", h("input", { name: "name", id: "tenant-name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}" })),
  h("label", {}, "plan", h("input", { name: "plan", id: "tenant-plan", placeholder: "(none)" })),
  h("label", {}, "models (globs, comma-separated)", h("input", { name: "models", id: "tenant-models", placeholder: "fraud, churn*" })),
  h("label", {}, "scopes", h("input", { name: "scopes", id: "tenant-scopes", placeholder: "predict:*, metadata:*" })),
  h("button", { type: "submit", id: "tenant-create" }, "Create tenant"),
);
const tenantsBox = h("div", { id: "tenant-list" });
const keysTitle = h("h2", { id: "keys-title" }, "Keys");
const secretBox = h("div", { id: "secret-box" });
const keyForm = h(
  "form",
  { class: "inline", id: "key-form" },
  h("label", {}, "key name", h("input", { name: "name", id: "key-name", placeholder: "ci" })),
  h("label", {}, "scopes (within the tenant's)", h("input", { name: "scopes", id: "key-scopes", placeholder: "predict:*" })),
  h("label", {}, "expires in", h("input", { name: "expires_in", id: "key-expires", placeholder: "90d" })),
  h("button", { type: "submit", id: "key-create" }, "Create key"),
);
const graceInput = h("input", { id: "grace", value: "1h", size: 6 });
const keysBox = h("div", { id: "key-list" });
const keysPanel = h(
  "div",
  { class: "panel hidden", id: "keys-panel" },
  keysTitle,
  secretBox,
  keyForm,
  h("p", { class: "legend" }, "Rotation grace (how long a rotated key keeps working): ", graceInput),
  keysBox,
);
content.append(h("div", { class: "panel" }, h("h2", {}, "Tenants"), tenantForm, tenantsBox), keysPanel);

tenantForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(tenantForm);
  const body = { name: form.get("name"), models: list(form.get("models")), scopes: list(form.get("scopes")) };
  if (form.get("plan")) body.plan = form.get("plan");
  try {
    const tenant = await api("POST", "/admin/tenants", body);
    tenantForm.reset();
    chosen = tenant.name;
    status(null);
    await refresh();
  } catch (error) {
    status(error);
  }
});

keyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(keyForm);
  const body = { name: form.get("name") || "", scopes: list(form.get("scopes")) };
  if (form.get("expires_in")) body.expires_in = form.get("expires_in");
  try {
    const created = await api("POST", `/admin/tenants/${encodeURIComponent(chosen)}/keys`, body);
    keyForm.reset();
    showOnce(created, "New key");
    status(null);
    await refreshKeys();
  } catch (error) {
    status(error);
  }
});

/** The key, once: shown with a copy button until dismissed, then gone from the page. */
function showOnce(created, what) {
  const code = h("code", { id: "new-key" }, created.key);
  const copied = h("span", { class: "muted", id: "copied" });
  const copy = h(
    "button",
    {
      id: "copy-key",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(created.key);
        } catch (_) {
          const range = document.createRange();
          range.selectNodeContents(code);
          window.getSelection().removeAllRanges();
          window.getSelection().addRange(range);
          document.execCommand("copy");
        }
        copied.textContent = "copied";
      },
    },
    "Copy",
  );
  const done = h("button", { class: "secondary", id: "dismiss-key", onclick: () => fill(secretBox) }, "Done");
  fill(
    secretBox,
    h(
      "div",
      { class: "secret" },
      h("p", {}, h("strong", {}, `${what} ${created.key_id}`), " — shown only this once; copy it now:"),
      h("p", {}, code),
      h("div", { class: "actions" }, copy, done, copied),
    ),
  );
}

async function refresh() {
  const { tenants } = await api("GET", "/admin/tenants");
  fill(
    tenantsBox,
    table(
      ["name", "plan", "models", "scopes", "created", "state", ""],
      tenants.map((t) => [
        h("a", { href: `?tenant=${encodeURIComponent(t.name)}`, "data-tenant": t.name, onclick: (e) => choose(e, t.name) }, t.name),
        t.plan ?? "–",
        t.models.join(", ") || "(all)",
        t.scopes.join(", ") || "(any)",
        time(t.created_at),
        h("span", { class: `badge ${t.disabled ? "bad" : "ok"}` }, t.disabled ? "disabled" : "enabled"),
        h("a", { href: `/console/usage?tenant=${encodeURIComponent(t.name)}` }, "usage"),
      ]),
      { empty: "no tenants yet", rowAttrs: (i) => (tenants[i].name === chosen ? { class: "selected" } : {}) },
    ),
  );
  if (chosen && !tenants.some((t) => t.name === chosen)) chosen = null;
  keysPanel.classList.toggle("hidden", !chosen);
  if (chosen) await refreshKeys();
}

function choose(event, name) {
  event.preventDefault();
  chosen = name;
  fill(secretBox);
  window.history.replaceState(null, "", `?tenant=${encodeURIComponent(name)}`);
  refresh().catch(status);
}

const STATUS_CLASS = { active: "ok", rotating: "warn", expired: "bad", revoked: "bad" };

async function refreshKeys() {
  fill(keysTitle, `Keys of ${chosen}`);
  const { keys } = await api("GET", `/admin/tenants/${encodeURIComponent(chosen)}/keys`);
  fill(
    keysBox,
    table(
      ["key id", "name", "scopes", "status", "created", "expires", "last used", ""],
      keys.map((k) => [
        h("code", {}, k.key_id),
        k.name || "–",
        k.scopes.join(", ") || "(none)",
        h("span", { class: `badge ${STATUS_CLASS[k.status] || ""}`, "data-status": k.status }, k.status),
        time(k.created_at),
        time(k.expires_at),
        time(k.last_used_at),
        k.status === "revoked"
          ? ""
          : h(
              "div",
              { class: "actions" },
              k.status === "active" ? h("button", { class: "secondary", "data-rotate": k.key_id, onclick: () => rotate(k) }, "Rotate") : null,
              h("button", { class: "danger", "data-revoke": k.key_id, onclick: () => revoke(k) }, "Revoke"),
            ),
      ]),
      { empty: "no keys yet" },
    ),
  );
}

async function rotate(key) {
  const grace = graceInput.value.trim() || "1h";
  if (!(await confirmAction(`Rotate key ${key.key_id}? A new key is made now; the old one keeps working for ${grace}.`, "Rotate"))) return;
  try {
    const created = await api("POST", `/admin/keys/${encodeURIComponent(key.key_id)}/rotate`, { grace });
    showOnce(created, "Rotated: new key");
    await refreshKeys();
  } catch (error) {
    status(error);
  }
}

async function revoke(key) {
  if (!(await confirmAction(`Revoke key ${key.key_id}? Every replica refuses it within a second.`, "Revoke"))) return;
  try {
    await api("POST", `/admin/keys/${encodeURIComponent(key.key_id)}/revoke`);
    await refreshKeys();
  } catch (error) {
    status(error);
  }
}

poll(refresh, 5000);
