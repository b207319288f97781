// The payment simulator's stand-in for a card issuer's 3-D Secure page. The
// storefront sends the customer here (next_action.redirect_to_url.url of a 202
// requires_action checkout); approving or declining settles the simulated
// charge through POST /v1/simulator/authenticate, then the customer goes back to
// the storefront, which confirms the checkout and shows the outcome.
"use strict";
(function () {
  const G = window.Godwit;
  const { el } = G;

  // backTo is where the customer returns: the storefront, told which checkout
  // to confirm. Only a path on this origin is accepted, so the page cannot be
  // used to send someone elsewhere.
  function backTo(params, checkoutID, outcome) {
    let dest = params.get("return_url") || "/ui/shop";
    if (!/^\/(?![/\\])/.test(dest)) dest = "/ui/shop";
    const u = new URL(dest, location.origin);
    if (checkoutID) u.searchParams.set("checkout_id", checkoutID);
    if (outcome) u.searchParams.set("authentication", outcome);
    return u.pathname + u.search;
  }

  async function start() {
    const root = document.getElementById("main");
    const params = new URLSearchParams(location.search);
    const secret = params.get("client_secret") || "";
    const pending = G.pending3DS();
    let checkoutID = params.get("checkout_id") || "";
    if (!checkoutID && pending && pending.client_secret === secret) checkoutID = pending.checkout_id;

    if (!secret) {
      G.clear(root, el("div.panel.bank-card",
        el("h1", "Nothing to confirm"),
        G.problemBox({ code: "missing_client_secret", detail: "this page was opened without a payment to confirm. Start again from the shop." }, 400),
        el("p", el("a#back-to-shop", { href: "/ui/shop" }, "Back to the shop"))));
      root.dataset.ready = "authenticate-missing";
      return;
    }

    const result = el("div#auth-result", { "aria-live": "polite" });
    const approve = el("button#approve", { type: "button" }, "Approve payment");
    const decline = el("button.danger#decline", { type: "button" }, "Decline");
    const window_ = el("p#auth-window.muted", "");
    G.clear(root, el("section.panel.bank-card", { "aria-labelledby": "h-auth" },
      el("h1#h-auth", "Confirm your payment"),
      el("p", "Your card issuer asks you to confirm this online payment (3-D Secure)."),
      window_,
      el("p.small.muted", "This is the payment simulator's authentication step: Approve completes the payment, Decline refuses it as a bank would when the check fails."),
      el("div.row.bank-actions", approve, decline),
      result));

    // How long the bank waits, when the checkout can be read with the client
    // secret (GET /v1/checkout/{id}); the page works without it.
    if (checkoutID) {
      G.api("GET", "/v1/checkout/" + encodeURIComponent(checkoutID), { headers: { "Godwit-Client-Secret": secret } }).then((r) => {
        if (!r.ok) return;
        if (r.body.status === "requires_action" && r.body.expires_at) {
          G.clear(window_, "Please answer before ", el("strong", G.time(r.body.expires_at)), ".");
        } else if (r.body.status && r.body.status !== "requires_action") {
          G.clear(window_, "This payment is no longer waiting for you (it is ", r.body.status.replace(/_/g, " "), ").");
        }
      });
    }

    async function answer(ok) {
      approve.disabled = decline.disabled = true;
      G.clear(result, el("p.muted", ok ? "Approving…" : "Declining…"));
      const r = await G.api("POST", "/v1/simulator/authenticate", { body: { client_secret: secret, approve: ok } });
      if (r.ok) {
        G.clear(result, G.okBox(ok ? "Payment approved. Taking you back to the shop…" : "Payment declined. Taking you back to the shop…"));
        root.dataset.ready = "authenticate-done";
        location.assign(backTo(params, checkoutID, ok ? "approved" : "declined"));
        return;
      }
      let title = "The answer could not be sent to the bank";
      if (r.status === 404) title = "This payment is not waiting for confirmation here (the link may be old or mistyped)";
      else if (r.status === 409) title = "This payment was already answered or has expired";
      G.clear(result, G.problemBox(r.body, r.status, title),
        el("p", el("a#back-to-shop", { href: backTo(params, checkoutID, "") }, "Back to the shop")));
      // A network failure can be tried again; a known refusal cannot.
      if (r.status === 0 || r.status >= 500) approve.disabled = decline.disabled = false;
      root.dataset.ready = "authenticate-error";
    }
    approve.addEventListener("click", () => answer(true));
    decline.addEventListener("click", () => answer(false));
    root.dataset.ready = "authenticate";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
