// Entry point: load the UI config, mark the current page in the navigation and
// render the page the path names.
"use strict";
(function () {
  const G = window.Godwit;
  G.configReady = G.api("GET", "/ui/config.json").then((r) => { if (r.ok) G.config = r.body; });

  async function start() {
    const root = document.getElementById("main");
    const path = location.pathname;
    let page = "shop", arg = null;
    let m;
    if (path === "/ui/member") page = "member";
    else if (path === "/ui/ops") page = "ops";
    else if ((m = /^\/ui\/trace\/([0-9a-fA-F]{32})$/.exec(path))) { page = "trace"; arg = m[1].toLowerCase(); }
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === (page === "trace" ? "ops" : page)) a.setAttribute("aria-current", "page");
    }
    await G.configReady;
    G.renderWho();
    try {
      await G.pages[page](root, arg);
    } catch (e) {
      G.clear(root, G.problemBox({ code: "ui_error", detail: "the page failed to render: " + (e && e.message) }));
      root.dataset.ready = "error";
      throw e;
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
