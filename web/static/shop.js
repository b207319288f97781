// Storefront: products, cart, checkout with the simulator's test tokens,
// pay part with points, 3-D Secure authentication, confirmation with the trace
// link.
"use strict";
(function () {
  const G = window.Godwit;
  const { el } = G;

  // The payment simulator's test tokens and what each one does.
  const TOKENS = [
    ["tok_visa", "Visa — payment succeeds"],
    ["tok_mastercard", "Mastercard — payment succeeds"],
    ["tok_threeDSecure2Required", "3-D Secure card — your bank asks you to confirm"],
    ["tok_slow", "Slow card — succeeds after a delay"],
    ["tok_chargeDeclined", "Declined — generic decline"],
    ["tok_chargeDeclinedInsufficientFunds", "Declined — insufficient funds"],
    ["tok_chargeDeclinedLostCard", "Declined — lost card"],
    ["tok_chargeDeclinedProcessingError", "Declined — processing error (soft)"],
  ];

  function cartKey() {
    const m = G.member();
    return "godwit.cart." + (m ? "member." + m.id : "guest");
  }

  G.pages.shop = async function (root) {
    const m = G.member();
    const state = { products: [], byId: {}, cart: null, memberInfo: null, form: { token: "tok_visa", email: "", points: 0 } };
    const productsBox = el("div.cards#products", { "aria-live": "polite" }, el("p.muted", "Loading products…"));
    const cartBox = el("div#cart");
    const resultBox = el("div#checkout-result", { "aria-live": "polite" });
    G.clear(root,
      el("h1", "Shop"),
      el("div.grid.cols-2",
        el("section", { "aria-labelledby": "h-products" }, el("h2#h-products", "Products"), productsBox),
        el("section.cart-col", { "aria-labelledby": "h-cart" },
          el("div.panel", el("h2#h-cart", "Your cart"), cartBox),
          resultBox)));

    async function loadProducts() {
      const r = await G.api("GET", "/v1/products");
      if (!r.ok) return G.clear(productsBox, G.problemBox(r.body, r.status, "Products could not be loaded"));
      state.products = r.body.products || [];
      state.byId = Object.fromEntries(state.products.map((p) => [p.id, p]));
      renderProducts();
    }

    function renderProducts() {
      if (!state.products.length) return G.clear(productsBox, el("p.muted", "The catalogue is empty."));
      G.clear(productsBox, state.products.map((p) => {
        const qty = el("input.qty", { type: "number", min: 1, max: Math.max(1, p.available), value: 1, inputmode: "numeric" });
        const out = p.available <= 0;
        const add = el("button", { type: "submit", disabled: out, "data-add": p.id }, "Add to cart");
        const form = el("form", { "aria-label": "Add " + p.name + " to the cart",
          onsubmit: (e) => { e.preventDefault(); G.busy(add, () => addItem(p.id, parseInt(qty.value, 10) || 1)); } },
          G.field("Quantity", qty), add);
        return el("article.product", { "data-product": p.id, "data-sku": p.sku },
          el("div.name", p.name),
          el("div.muted.small", "SKU ", el("code", p.sku)),
          el("div.price", G.money(p.price)),
          el("div.stock" + (out ? ".out" : ""), out ? "Out of stock" : G.points(p.available) + " in stock"),
          form);
      }));
    }

    async function ensureCart() {
      if (state.cart) return state.cart;
      const r = await G.api("POST", "/v1/carts", { body: {}, token: m && m.token });
      if (!r.ok) throw r;
      state.cart = r.body;
      sessionStorage.setItem(cartKey(), state.cart.id);
      return state.cart;
    }

    async function loadCart() {
      const id = sessionStorage.getItem(cartKey());
      if (id) {
        const r = await G.api("GET", "/v1/carts/" + encodeURIComponent(id), { token: m && m.token });
        const p = G.pending3DS();
        if (r.ok && !r.body.checkout_id) state.cart = r.body;
        // A cart held by a checkout waiting for the bank stays remembered: a
        // declined authentication gives it back.
        else if (!(r.ok && p && p.cart_id === id)) sessionStorage.removeItem(cartKey());
      }
      renderCart();
    }

    async function addItem(productID, quantity) {
      G.clear(resultBox);
      try {
        const c = await ensureCart();
        const r = await G.api("POST", "/v1/carts/" + encodeURIComponent(c.id) + "/items", { body: { product_id: productID, quantity }, token: m && m.token });
        if (!r.ok) return showCartError(r);
        state.cart = r.body;
        renderCart();
        G.clear(resultBox, G.okBox("Added ", (state.byId[productID] || {}).name || productID, " to the cart."));
      } catch (r) {
        showCartError(r);
      }
    }

    async function setQty(productID, quantity) {
      const path = "/v1/carts/" + encodeURIComponent(state.cart.id) + "/items/" + encodeURIComponent(productID);
      const r = quantity > 0
        ? await G.api("PUT", path, { body: { quantity }, token: m && m.token })
        : await G.api("DELETE", path, { token: m && m.token });
      if (!r.ok) return showCartError(r);
      state.cart = r.body;
      renderCart();
    }

    function showCartError(r) {
      if (r && r.body && r.body.code === "cart_checked_out") {
        sessionStorage.removeItem(cartKey());
        state.cart = null;
        renderCart();
      }
      G.clear(resultBox, G.problemBox(r.body, r.status, "The cart could not be changed"));
    }

    function renderCart() {
      const c = state.cart;
      if (!c || !c.items || !c.items.length) {
        return G.clear(cartBox, el("p.muted#cart-empty", "The cart is empty. Add something from the list."));
      }
      const rows = c.items.map((it) => {
        const p = state.byId[it.product_id] || {};
        const qty = el("input.qty", { type: "number", min: 0, value: it.quantity, inputmode: "numeric", "aria-label": "Quantity of " + (p.name || it.product_id) });
        return el("tr", { "data-line": it.product_id },
          el("td", p.name || it.product_id, el("div.muted.small", G.money(it.unit_price), " each")),
          el("td", el("form.row", { onsubmit: (e) => { e.preventDefault(); setQty(it.product_id, parseInt(qty.value, 10) || 0); } },
            qty, el("button.secondary", { type: "submit", "aria-label": "Update quantity of " + (p.name || it.product_id) }, "Update"),
            el("button.danger", { type: "button", "aria-label": "Remove " + (p.name || it.product_id), onclick: () => setQty(it.product_id, 0) }, "Remove"))),
          el("td.num", G.money({ amount: it.unit_price.amount * it.quantity, currency: it.unit_price.currency })));
      });
      G.clear(cartBox,
        el("div.table-wrap", el("table#cart-table",
          el("thead", el("tr", el("th", "Item"), el("th", "Quantity"), el("th.num", "Amount"))),
          el("tbody", rows),
          el("tfoot", el("tr", el("th", { colspan: 2 }, "Total"), el("td.num#cart-total", G.money(c.total)))))),
        checkoutForm());
    }

    function checkoutForm() {
      const f = state.form;
      const token = el("select#pay-token", { onchange: () => { f.token = token.value; } },
        TOKENS.map(([v, t]) => el("option", { value: v, selected: v === f.token }, t)));
      const kids = [el("h3", "Check out"), G.field("Test card (payment simulator token)", token, "These are the simulator's test tokens; no real card is used.")];
      let email = null, pts = null;
      if (!m) {
        email = el("input#email", { type: "email", autocomplete: "email", required: true, placeholder: "you@example.test", value: f.email,
          oninput: () => { f.email = email.value; } });
        kids.push(G.field("Email for the confirmation", email));
        kids.push(el("p.small.muted", "Members can pay part with points: ", el("a", { href: "/ui/member" }, "sign in"), "."));
      } else {
        pts = el("input#points", { type: "number", min: 0, step: 1, value: f.points, inputmode: "numeric", oninput: () => { f.points = pts.value; } });
        const bal = state.memberInfo ? " You have " + G.points(state.memberInfo.balance) + " points." : "";
        kids.push(G.field("Points to use", pts, "Signed in as " + m.id + "." + bal + " Leave 0 to pay fully by card."));
      }
      const place = el("button#place-order", { type: "submit" }, "Place order");
      kids.push(el("div.row", place));
      return el("form#checkout-form", { onsubmit: (e) => { e.preventDefault(); G.busy(place, () => placeOrder(token.value, email && email.value, pts && parseInt(pts.value, 10))); } }, kids);
    }

    async function placeOrder(token, email, points) {
      G.clear(resultBox, el("p.muted", "Placing the order…"));
      const body = { cart_id: state.cart.id, payment: { token } };
      if (email) body.email = email;
      if (points > 0) body.points_to_redeem = points;
      const r = await G.api("POST", "/v1/checkout", { body, token: m && m.token, idem: G.newKey() });
      if (r.status === 202 && r.body.status === "requires_action") return authenticate(r.body);
      if (!r.ok) return showFailure(r);
      showConfirmation(r.body);
    }

    // showFailure shows why the order was not placed, with the cart as it is now
    // (the checkout releases it on failure, so the customer can pay again).
    async function showFailure(r) {
      const id = state.cart ? state.cart.id : sessionStorage.getItem(cartKey());
      if (id) {
        const c = await G.api("GET", "/v1/carts/" + encodeURIComponent(id), { token: m && m.token });
        if (c.ok && !c.body.checkout_id) state.cart = c.body;
      }
      renderCart();
      G.clear(resultBox, G.problemBox(r.body, r.status, r.body.code === "payment_declined" ? "Payment declined" : "The order was not placed"),
        state.cart && state.cart.items && state.cart.items.length ? el("p.small.muted#cart-kept", "Your cart is kept: choose a card and place the order again.") : null);
    }

    function showConfirmation(o) {
      state.form.points = 0;
      sessionStorage.removeItem(cartKey());
      state.cart = null;
      renderCart();
      loadProducts();
      const facts = [
        ["Order", el("code#order-id", o.order_id)],
        ["Status", o.status],
        ["Total", G.money(o.total)],
        ["Charged to card", G.money(o.charged)],
      ];
      if (o.points_redeemed) facts.push(["Points used", el("span#points-redeemed", G.points(o.points_redeemed))]);
      if (m) facts.push(["Points earned", el("span#points-earned", G.points(o.points_earned))]);
      G.clear(resultBox, el("div.alert.ok#confirmation", { role: "status" },
        el("h3", "Thank you — order confirmed"),
        el("dl", facts.map(([k, v]) => [el("dt", k), el("dd", v)])),
        el("p.row", G.traceLink(o.trace_id, "See this checkout's trace"), m ? el("a", { href: "/ui/member" }, "See your statement") : null)));
      document.getElementById("confirmation").scrollIntoView({ block: "nearest" });
    }

    // authenticationURL is where the bank wants the customer: the 202's
    // next_action. The simulator's page is told the checkout too.
    function authenticationURL(a) {
      const na = a.next_action || {};
      const raw = na.redirect_to_url && na.redirect_to_url.url;
      if (!raw) return null;
      let u;
      try { u = new URL(raw, location.origin); } catch { return null; }
      if (u.protocol !== "https:" && u.protocol !== "http:") return null;
      if (u.origin === location.origin && !u.searchParams.get("checkout_id") && a.checkout_id) u.searchParams.set("checkout_id", a.checkout_id);
      return u.origin === location.origin ? u.pathname + u.search : u.href;
    }

    // authenticate handles a 202 requires_action: the cart stays as it is (the
    // checkout holds it), the checkout is remembered in this tab, and the
    // customer goes to the bank's page, which sends them back here to confirm.
    function authenticate(a) {
      const url = authenticationURL(a);
      if (!url) {
        return G.clear(resultBox, G.problemBox({ code: "no_next_action", detail: "the bank asked for a confirmation step but did not say where. Nothing was charged." }, 202, "The order was not placed"));
      }
      G.setPending3DS({ checkout_id: a.checkout_id, client_secret: a.client_secret, cart_id: state.cart && state.cart.id, member_id: m ? m.id : "", url,
        email: state.form.email });
      G.clear(resultBox, G.infoBox(el("h3", "Confirm the payment with your bank"),
        el("p", "Your bank asks you to confirm this payment. Taking you to your bank's page…"),
        el("p", el("a#continue-3ds", { href: url }, "Continue to your bank"))));
      location.assign(url);
    }

    const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

    // confirmPending finishes a checkout the customer authenticated (or refused)
    // at the bank: POST /v1/checkout/{id}/confirm with the client secret, then
    // the confirmation or the reason, exactly as after POST /v1/checkout.
    async function confirmPending(p, answered) {
      G.clear(resultBox, el("p.muted#confirming", "Completing your order…"));
      let r;
      for (let attempt = 0; attempt < 10; attempt++) {
        r = await G.api("POST", "/v1/checkout/" + encodeURIComponent(p.checkout_id) + "/confirm", { body: { client_secret: p.client_secret }, token: m && m.token });
        // Someone else (the bank's notification) is settling it, or the bank's
        // answer has not arrived yet: wait as told, a few times.
        const busy = r.status === 409 && r.body.code === "checkout_in_progress";
        const waiting = r.status === 202 && answered;
        if (!busy && !waiting) break;
        await sleep(Math.min(Math.max(r.retryAfter || 1, 1), 3) * 1000);
      }
      if (r.ok && r.status !== 202) {
        G.clearPending3DS();
        return showConfirmation(r.body);
      }
      if (r.status === 202) {
        return G.clear(resultBox, G.infoBox(el("h3", "Your bank is still waiting for you"),
          el("p", "The payment has not been confirmed yet. Nothing was charged."),
          el("p", el("a#continue-3ds", { href: p.url || "#" }, "Continue to your bank"))));
      }
      if (r.status === 402 || r.status === 404 || (r.status === 409 && r.body.code !== "checkout_in_progress")) {
        // Settled for good (declined, expired or gone): the cart is released.
        G.clearPending3DS();
        return showFailure(r);
      }
      const retry = el("button#retry-confirm", { type: "button", onclick: () => G.busy(retry, () => confirmPending(p, answered)) }, "Try again");
      G.clear(resultBox, G.problemBox(r.body, r.status, "The order could not be completed yet"), el("p.row", retry));
    }

    // resume picks up a checkout waiting for 3-D Secure when the customer comes
    // back from the bank's page (?checkout_id=… names it; the secret is in this
    // tab's storage, never in the address).
    async function resume() {
      const q = new URLSearchParams(location.search);
      const named = q.get("checkout_id");
      const answered = q.has("authentication");
      if (named) history.replaceState(null, "", location.pathname);
      const p = G.pending3DS();
      if (!p || p.member_id !== (m ? m.id : "") || (named && named !== p.checkout_id)) return;
      if (p.email) state.form.email = p.email; // the form comes back filled in if the cart is kept
      if (!named) {
        // Back in the shop without passing the bank: offer the way on.
        return G.clear(resultBox, G.infoBox(el("h3", "An order is waiting for your bank's confirmation"),
          el("p.row", el("a#continue-3ds", { href: p.url || "#" }, "Continue to your bank"),
            el("button.secondary#check-3ds", { type: "button", onclick: () => confirmPending(p, false) }, "I have confirmed it"))));
      }
      await confirmPending(p, answered);
    }

    if (m) {
      G.api("GET", "/v1/members/" + encodeURIComponent(m.id), { token: m.token }).then((r) => {
        if (r.ok) { state.memberInfo = r.body; if (state.cart && state.cart.items && state.cart.items.length) renderCart(); }
      });
    }
    await loadProducts();
    await resume();
    await loadCart();
    root.dataset.ready = "shop";
  };
})();
