// The sign-in page: say so when the last attempt failed (the URL carries only ?failed=1).
if (new URLSearchParams(window.location.search).has("failed")) {
  document.getElementById("failed").classList.remove("hidden");
}
