// Godwit UI core: DOM helpers, the API client, sessions, formatting and error
// wording. Every page script adds itself to window.Godwit.pages.
"use strict";
(function () {
  const G = (window.Godwit = { pages: {}, config: { demo: false } });

  // ---- DOM
  // el("tag.class#id", {attr: value, onclick: fn}, children...) builds an element.
  G.el = function (spec, attrs, ...kids) {
    const m = /^([a-z0-9]+)((?:[.#][\w-]+)*)$/i.exec(spec);
    const node = document.createElement(m ? m[1] : spec);
    if (m && m[2]) {
      for (const part of m[2].match(/[.#][\w-]+/g)) {
        if (part[0] === ".") node.classList.add(part.slice(1));
        else node.id = part.slice(1);
      }
    }
    if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
      kids.unshift(attrs);
      attrs = null;
    }
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    G.append(node, kids);
    return node;
  };
  G.append = function (node, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      node.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return node;
  };
  G.clear = function (node, ...kids) {
    node.replaceChildren();
    return G.append(node, kids);
  };
  let fieldSeq = 0;
  // field(labelText, control, hint) wraps a control with a <label for>.
  G.field = function (label, control, hint) {
    if (!control.id) control.id = "f" + ++fieldSeq;
    const kids = [G.el("label", { for: control.id }, label)];
    if (hint) {
      const hid = control.id + "-hint";
      control.setAttribute("aria-describedby", hid);
      kids.push(G.el("div.hint", { id: hid }, hint));
    }
    kids.push(control);
    return G.el("div.field", kids);
  };
  G.svg = function (tag, attrs, ...kids) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const k of kids.flat()) {
      if (k === null || k === undefined) continue;
      node.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return node;
  };

  // ---- Sessions: tokens live in sessionStorage (gone when the tab closes).
  const KEY = { member: "godwit.member", admin: "godwit.admin" };
  function readJSON(k) {
    try { return JSON.parse(sessionStorage.getItem(k) || "null"); } catch { return null; }
  }
  // decodeToken reads a JWT's claims (no verification: the server does that).
  G.decodeToken = function (tok) {
    const parts = String(tok).trim().split(".");
    if (parts.length !== 3) return null;
    try {
      const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
      const json = decodeURIComponent(escape(atob(b64 + "===".slice((b64.length + 3) % 4))));
      return JSON.parse(json);
    } catch { return null; }
  };
  G.member = () => readJSON(KEY.member); // {token, id}
  G.admin = () => readJSON(KEY.admin); // {token}
  G.setMember = (token, id) => sessionStorage.setItem(KEY.member, JSON.stringify({ token, id }));
  G.setAdmin = (token) => sessionStorage.setItem(KEY.admin, JSON.stringify({ token }));
  G.signOutMember = () => sessionStorage.removeItem(KEY.member);
  G.signOutAdmin = () => sessionStorage.removeItem(KEY.admin);
  // A checkout waiting for 3-D Secure: {checkout_id, client_secret, cart_id,
  // member_id}, kept while the customer is on the bank's page so the storefront
  // can confirm it when they come back. Never sent anywhere but this origin.
  G.pending3DS = () => readJSON("godwit.3ds");
  G.setPending3DS = (p) => sessionStorage.setItem("godwit.3ds", JSON.stringify(p));
  G.clearPending3DS = () => sessionStorage.removeItem("godwit.3ds");

  // ---- API
  // api(method, path, {body, token, idem, headers}) → {ok, status, body, retryAfter}. Never throws
  // for HTTP errors; a network failure becomes status 0 with a problem body.
  G.api = async function (method, path, opts) {
    opts = opts || {};
    const headers = { Accept: "application/json" };
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    if (opts.token) headers.Authorization = "Bearer " + opts.token;
    if (opts.idem) headers["Idempotency-Key"] = opts.idem;
    Object.assign(headers, opts.headers || {});
    let res;
    try {
      res = await fetch(path, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), cache: "no-store" });
    } catch (e) {
      return { ok: false, status: 0, body: { code: "network_error", detail: "The server could not be reached (" + e.message + ")." } };
    }
    let body = null;
    const text = await res.text();
    if (text) {
      try { body = JSON.parse(text); } catch { body = { detail: text }; }
    }
    const ra = parseInt(res.headers.get("Retry-After") || "", 10);
    return { ok: res.ok, status: res.status, body: body || {}, retryAfter: isNaN(ra) ? null : ra };
  };
  G.newKey = function () {
    if (crypto.randomUUID) return "ui-" + crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return "ui-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  };
  G.demoToken = async function (role, memberID) {
    const r = await G.api("POST", "/ui/demo/token", { body: role === "member" ? { role, member_id: memberID } : { role } });
    return r.ok ? r.body.token : Promise.reject(r.body);
  };

  // ---- Formatting
  const fractionDigits = {};
  function digits(currency) {
    if (!(currency in fractionDigits)) {
      try {
        fractionDigits[currency] = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
      } catch { fractionDigits[currency] = 2; }
    }
    return fractionDigits[currency];
  }
  // money({amount, currency}) formats minor units exactly: the decimal string
  // is built from the integer, never through floating point.
  G.money = function (m) {
    if (!m || typeof m.amount !== "number") return "—";
    const d = digits(m.currency);
    const neg = m.amount < 0;
    const s = String(Math.abs(m.amount)).padStart(d + 1, "0");
    const dec = d ? s.slice(0, -d) + "." + s.slice(-d) : s;
    try {
      return new Intl.NumberFormat("en", { style: "currency", currency: m.currency, minimumFractionDigits: d }).format((neg ? "-" : "") + dec);
    } catch {
      return (neg ? "-" : "") + dec + " " + m.currency;
    }
  };
  G.points = (n) => (typeof n === "number" ? n.toLocaleString("en") : "—");
  G.signed = (n) => (n > 0 ? "+" : n < 0 ? "−" : "") + Math.abs(n).toLocaleString("en");
  G.ms = function (v) {
    if (typeof v !== "number") return "—";
    if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 1 : 2) + " s";
    if (v >= 10) return Math.round(v) + " ms";
    return v.toFixed(v >= 1 ? 1 : 2) + " ms";
  };
  G.when = function (iso) {
    const t = new Date(iso);
    return isNaN(t) ? String(iso || "") : t.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "medium" });
  };
  G.time = function (iso) {
    const t = new Date(iso);
    return isNaN(t) ? "" : t.toLocaleTimeString("en-GB");
  };
  G.traceLink = (id, text) => (id ? G.el("a", { href: "/ui/trace/" + encodeURIComponent(id) }, text || "View trace") : null);

  // ---- Errors in words
  G.declineWords = {
    generic_decline: "The card issuer declined the payment without giving a reason.",
    insufficient_funds: "The card has insufficient funds for this amount.",
    lost_card: "The card has been reported lost, so the issuer refused it.",
    stolen_card: "The card has been reported stolen, so the issuer refused it.",
    processing_error: "The card issuer had a processing error. This is temporary: trying again may work.",
    expired_card: "The card has expired.",
    incorrect_cvc: "The card's security code was wrong.",
    payment_intent_authentication_failure: "The bank's security check (3-D Secure) was not completed, so the bank refused the payment. Nothing was charged.",
  };
  const stepWords = {
    initiated: "before it started", validating_cart: "while checking the cart", reserving_inventory: "while reserving stock",
    holding_points: "while holding your points", processing_payment: "while taking the payment", creating_order: "while creating the order",
    finishing: "while finishing", complete: "after completing",
  };
  const codeWords = {
    insufficient_points: (p) => "Not enough points: you need " + G.points(p.points_short) + " more" +
      (typeof p.current_balance === "number" ? " (your balance is " + G.points(p.current_balance) + ")" : "") + ".",
    insufficient_stock: () => "Some items are no longer in stock in the quantity you asked for.",
    price_changed: () => "A price changed since the item went into the cart. The cart now shows the new prices; check them and place the order again.",
    points_exceed_total: (p) => "That many points are worth more than the order" + (typeof p.max_points === "number" ? "; the most you can use is " + G.points(p.max_points) + " points" : "") + ".",
    points_unavailable: () => "Only signed-in members can pay with points.",
    unauthenticated: () => "You need to sign in for this.",
    forbidden: () => "This token is not allowed to do that.",
    invalid_token: () => "The token was not accepted (it may be expired or for another server).",
    fulfillment_failed: () => "The partner could not fulfil the redemption. Nothing was taken: your points are as they were.",
    network_error: (p) => p.detail,
    authentication_expired: () => "The time to confirm the payment with your bank ran out. Nothing was charged; your cart is kept, so you can place the order again.",
    checkout_in_progress: () => "This order is still being completed. Wait a moment and try again.",
  };
  // describe(problem) → one sentence a person can act on.
  G.describe = function (p, status) {
    p = p || {};
    if (p.code === "payment_declined") {
      return "Payment declined: " + (G.declineWords[p.decline_code] || "the card was declined (" + (p.decline_code || "no reason given") + ").");
    }
    if (codeWords[p.code]) return codeWords[p.code](p);
    if (p.detail) return p.detail.charAt(0).toUpperCase() + p.detail.slice(1) + (/[.!?]$/.test(p.detail) ? "" : ".");
    return "The request failed" + (status ? " (HTTP " + status + ")" : "") + ".";
  };
  // problemBox renders a problem as an alert with its code and useful members.
  G.problemBox = function (p, status, title) {
    p = p || {};
    const facts = [];
    const add = (k, v) => { if (v !== undefined && v !== null && v !== "") facts.push(G.el("dt", k), G.el("dd", v)); };
    add("Code", G.el("code.err-code", p.code || "http_" + status));
    if (p.decline_code) add("Decline code", G.el("code.decline-code", p.decline_code));
    if (p.failure_step) add("Failed", (stepWords[p.failure_step] || p.failure_step) + " (" + p.failure_step + ")");
    if (typeof p.points_short === "number") add("Points short", G.el("span.points-short", G.points(p.points_short)));
    if (typeof p.current_balance === "number") add("Balance", G.points(p.current_balance));
    if (p.field) add("Field", G.el("code", p.field));
    if (Array.isArray(p.products)) add("Products", p.products.map((x) => (typeof x === "string" ? x : x.product_id || JSON.stringify(x))).join(", "));
    if (p.trace_id) add("Trace", G.traceLink(p.trace_id, p.trace_id.slice(0, 12) + "…"));
    return G.el("div.alert.error", { role: "alert" },
      title ? G.el("h3", title) : null,
      G.el("p.problem-words", G.describe(p, status)),
      facts.length ? G.el("dl", facts) : null);
  };
  G.okBox = (...kids) => G.el("div.alert.ok", { role: "status" }, kids);
  G.infoBox = (...kids) => G.el("div.alert.info", kids);

  // busy(button, fn) disables a button while fn runs.
  G.busy = async function (btn, fn) {
    if (btn) btn.disabled = true;
    try { return await fn(); } finally { if (btn) btn.disabled = false; }
  };

  // ---- Header: who is signed in
  G.renderWho = function () {
    const who = document.getElementById("who");
    const m = G.member(), a = G.admin();
    const kids = [];
    if (m) {
      kids.push(G.el("span", "Member: ", G.el("strong#who-member", m.id)),
        G.el("button", { type: "button", onclick: () => { G.signOutMember(); location.reload(); } }, "Sign out"));
    } else {
      kids.push(G.el("span", "Guest"), G.el("a", { href: "/ui/member" }, "Sign in"));
    }
    if (a) kids.push(G.el("span.tag", "admin"));
    G.clear(who, kids);
    const badge = document.getElementById("demo-badge");
    if (badge) badge.textContent = G.config.demo ? "Demo mode: sample data, demo sign-in enabled" : "";
  };
})();
