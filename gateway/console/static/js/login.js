// The sign-in page: say so when the last attempt failed (the URL carries only ?failed=1 or
// ?failed=oidc), and offer the OIDC sign-in when the gateway has one.
const failed = new URLSearchParams(window.location.search).get("failed");
if (failed !== null) {
  document.getElementById(failed === "oidc" ? "failed-oidc" : "failed").classList.remove("hidden");
}
const options = await (await fetch("/console/login/options", { credentials: "same-origin" })).json();
if (options.oidc) document.getElementById("oidc").classList.remove("hidden");
if (!options.token) document.getElementById("login").classList.add("hidden");
