// What every console page shares: the session (its CSRF token), calls to the admin API, the
// navigation, DOM building from nodes and text (never parsed markup), polling, and a confirmation dialog.
// The admin token never reaches a page: the session cookie is HttpOnly, and the CSRF token
// is sent only in the X-CSRF-Token header of this origin's own requests.

export const PAGES = [
  ["overview", "Overview"],
  ["rollouts", "Rollouts"],
  ["shadow", "Shadow"],
  ["tenants", "Tenants & keys"],
  ["usage", "Usage"],
  ["cache", "Cache"],
  ["config", "Config"],
  ["jobs", "Jobs"],
  ["audit", "Audit"],
];
export const POLL_MS = 3000;

let current = null;

/** The signed-in session ({actor, csrf_token, expires_at}); to the sign-in page without one. */
export async function session() {
  if (current) return current;
  const response = await fetch("/console/session", { credentials: "same-origin" });
  if (response.status === 401) {
    window.location.assign("/console/login");
    throw new Error("not signed in");
  }
  current = await response.json();
  return current;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A call to the admin API: the parsed JSON (or text), an ApiError otherwise. */
export async function api(method, path, body, { raw = false, type = "application/json" } = {}) {
  const { csrf_token } = await session();
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf_token;
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = type;
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 401) {
    window.location.assign("/console/login");
    throw new ApiError(401, "unauthorized", "signed out");
  }
  if (!response.ok) {
    let code = "error";
    let message = `${response.status} ${response.statusText}`;
    try {
      const data = await response.json();
      if (data && data.error) {
        code = data.error.code || code;
        message = data.error.message || message;
      }
    } catch (_) {
      /* not JSON: keep the status line */
    }
    throw new ApiError(response.status, code, message);
  }
  if (response.status === 204) return null;
  if (raw) return response.text();
  return response.json();
}

/** An element: h("td", {class: "num"}, "12"); attributes "on*" take listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace the children of #id (or the element) with ``children``. */
export function fill(target, ...children) {
  const el = typeof target === "string" ? document.getElementById(target) : target;
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  return el;
}

/** A table from column headings (null: none) and rows of cells (a cell: text, Node, or
 * [text, class]). */
export function table(headings, rows, { empty = "nothing yet", rowAttrs } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  const head = headings && h("tr", {}, headings.map((t) => (Array.isArray(t) ? h("th", { class: t[1] }, t[0]) : h("th", {}, t))));
  const body = rows.map((row, i) =>
    h(
      "tr",
      rowAttrs ? rowAttrs(i) : {},
      row.map((cell) => (Array.isArray(cell) ? h("td", { class: cell[1] }, cell[0]) : h("td", {}, cell))),
    ),
  );
  return h("table", {}, head && h("thead", {}, head), h("tbody", {}, body));
}

/** The header with the navigation, the signed-in actor and a sign-out button. */
export async function frame(active) {
  const links = PAGES.map(([name, title]) =>
    h("a", { href: `/console/${name}`, class: name === active ? "active" : null, id: `nav-${name}` }, title),
  );
  const who = h("span", { class: "who", id: "who" });
  const out = h("button", { class: "secondary", id: "logout", onclick: logout }, "Sign out");
  const header = h("header", { class: "top" }, h("span", { class: "brand" }, "model-gateway"), h("nav", {}, links), who, out);
  document.body.prepend(header);
  const s = await session();
  who.textContent = s.actor;
}

async function logout() {
  const { csrf_token } = await session();
  await fetch("/console/logout", {
    method: "POST",
    headers: { "X-CSRF-Token": csrf_token },
    credentials: "same-origin",
  });
  window.location.assign("/console/login");
}

/** Run ``task`` now and every POLL_MS; an error shows in #status instead of stopping it. */
export function poll(task, ms = POLL_MS) {
  let stopped = false;
  async function tick() {
    if (stopped) return;
    try {
      await task();
      status(null);
    } catch (error) {
      status(error);
    }
    if (!stopped) window.setTimeout(tick, ms);
  }
  tick();
  return () => {
    stopped = true;
  };
}

/** Show an error (or clear it) in the page's #status box. */
export function status(error) {
  const box = document.getElementById("status");
  if (!box) return;
  if (!error) {
    box.className = "hidden";
    box.textContent = "";
    return;
  }
  box.className = "error";
  box.textContent = error.message || String(error);
}

/** The message a page shows when an API it uses is not in this gateway (404). */
export function notAvailable(what) {
  return h("p", { class: "notice", "data-not-available": "true" }, `${what} is not available on this gateway.`);
}

/** Ask before doing something; resolves true when confirmed. */
export function confirmAction(message, verb = "Confirm") {
  return new Promise((resolve) => {
    const dialog = h("dialog", { id: "confirm" });
    const yes = h("button", { class: "danger", id: "confirm-yes" }, verb);
    const no = h("button", { class: "secondary", id: "confirm-no" }, "Cancel");
    dialog.append(h("p", {}, message), h("div", { class: "actions" }, yes, no));
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    yes.addEventListener("click", () => done(true));
    no.addEventListener("click", () => done(false));
    dialog.addEventListener("cancel", () => done(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function time(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19);
}

export function percent(ratio, digits = 2) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return "–";
  return `${(ratio * 100).toFixed(digits)} %`;
}

export function number(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function ms(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (!Number.isFinite(seconds)) return "∞";
  return `${(seconds * 1000).toFixed(1)} ms`;
}

export function list(text) {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}
