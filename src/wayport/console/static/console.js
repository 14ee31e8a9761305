// Wayport console: the few live parts of server-rendered pages. Everything works without this
// script except the live logs table and in-page playground results.
"use strict";

function livePoll(body) {
  let newest = body.dataset.newest;
  const url = body.dataset.live;
  async function poll() {
    if (document.hidden) return;
    const sep = url.includes("?") ? "&" : "?";
    const answer = await fetch(`${url}${sep}after=${encodeURIComponent(newest)}`, { credentials: "same-origin" });
    if (!answer.ok) return;
    const fresh = answer.headers.get("x-newest");
    const html = (await answer.text()).trim();
    if (!fresh || !html) return;
    body.insertAdjacentHTML("afterbegin", html);
    newest = fresh;
    body.dataset.newest = fresh;
  }
  setInterval(() => poll().catch(() => {}), 2000);
}

function fetchForm(form) {
  const target = document.querySelector(form.dataset.target);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    target.textContent = "Running…";
    try {
      const answer = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      target.innerHTML = await answer.text();
    } catch (error) {
      target.textContent = `The request failed: ${error}`;
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("tbody[data-live]").forEach(livePoll);
  document.querySelectorAll("form[data-target]").forEach(fetchForm);
  document.querySelectorAll("[data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  });
});
