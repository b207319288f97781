// Operations: recent checkouts and loyalty traces (failed and slowest first),
// fault switches, expiry, and charts drawn from the recent-trace buffer.
"use strict";
(function () {
  const G = window.Godwit;
  const { el } = G;

  // adminGate renders an admin sign-in when there is no admin token and
  // returns the token otherwise.
  G.adminGate = async function (root, title, why) {
    await G.configReady;
    const a = G.admin();
    if (a) return a.token;
    const tok = el("textarea#admin-token", { autocomplete: "off", spellcheck: "false", rows: 3 });
    const err = el("div", { "aria-live": "polite" });
    const go = el("button", { type: "submit" }, "Use this token");
    const kids = [el("h1", title), el("p", why)];
    if (G.config.demo && G.config.demo_admin) {
      kids.push(el("section.panel", el("h2", "Demo mode"),
        el("p.small.muted", "Sign in with a short-lived demo admin token."),
        el("button#demo-admin", {
          type: "button",
          onclick: (e) => G.busy(e.currentTarget, async () => {
            try { G.setAdmin(await G.demoToken("admin")); location.reload(); } catch (p) { G.clear(err, G.problemBox(p, 0, "Demo sign-in failed")); }
          }),
        }, "Sign in as demo admin")));
    } else if (G.config.demo) {
      kids.push(el("section.panel#demo-admin-off", el("h2", "Demo mode"),
        el("p.small.muted", "Demo admin sign-in is off on this server: anyone on this machine could use it. " +
          "Paste a token from godwit token admin <name> below, or restart with --demo-admin.")));
    }
    kids.push(el("form.panel", {
      onsubmit: (e) => {
        e.preventDefault();
        const c = G.decodeToken(tok.value);
        if (!c || c.scope !== "admin") return G.clear(err, G.problemBox({ code: "invalid_token", detail: "that is not an admin token" }));
        G.setAdmin(tok.value.trim());
        location.reload();
      },
    }, el("h2", "Admin token"), G.field("Admin bearer token", tok, "godwit token admin <name> prints one. Kept only in this browser tab."), el("div.row", go)));
    kids.push(err);
    G.clear(root, kids);
    root.dataset.ready = "admin-signin";
    return null;
  };

  // Kinds of trace by their root span name.
  function kindOf(name) {
    if (/\/v1\/checkout\b|^checkout\.|\/v1\/orders\/.*refund/.test(name)) return "checkout";
    if (/^POST \/v1\/members|\/v1\/admin\/expirations|^loyalty\.|\/redemptions|\/transfers/.test(name)) return "loyalty";
    return "other";
  }
  const isCheckout = (t) => /^POST \/v1\/checkout$/.test(t.root_name);

  function parseTime(iso) {
    const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(iso || "");
    if (!m) return Date.parse(iso);
    return Date.parse(m[1] + m[3]) + (m[2] ? parseFloat("0" + m[2]) * 1000 : 0);
  }
  G.parseTime = parseTime;

  G.pages.ops = async function (root) {
    const token = await G.adminGate(root, "Operations", "The operations view needs an admin token.");
    if (!token) return;
    const call = (method, path, body) => G.api(method, path, { token, body });
    const listBox = el("div#trace-list");
    const chartsBox = el("div.grid.cols-even#charts");
    const payBox = el("div#faults-payment");
    const fulBox = el("div#faults-fulfillment");
    const expBox = el("div#expiry");
    const filter = el("select#trace-filter",
      el("option", { value: "business" }, "Checkouts and loyalty"),
      el("option", { value: "checkout" }, "Checkouts"),
      el("option", { value: "loyalty" }, "Loyalty"),
      el("option", { value: "all" }, "Everything"));
    const refreshBtn = el("button.secondary#refresh", { type: "button" }, "Refresh");
    const auto = el("input#auto", { type: "checkbox" });
    G.clear(root,
      el("div.spread", el("h1", "Operations"),
        el("div.row", refreshBtn, el("label.toggle", { for: "auto" }, auto, "Refresh every 10 s"),
          el("button.secondary", { type: "button", onclick: () => { G.signOutAdmin(); location.reload(); } }, "Drop admin token"))),
      el("section", { "aria-labelledby": "h-charts" }, el("h2#h-charts", "Last 15 minutes"), chartsBox),
      el("section.panel", { "aria-labelledby": "h-traces" },
        el("div.spread", el("h2#h-traces", "Recent traces — failed and slowest first"), G.field("Show", filter)),
        listBox),
      el("div.grid.cols-even",
        el("section.panel", { "aria-labelledby": "h-pay" }, el("h2#h-pay", "Payment simulator faults"), payBox),
        el("section.panel", { "aria-labelledby": "h-ful" }, el("h2#h-ful", "Fulfilment provider faults"), fulBox),
        el("section.panel", { "aria-labelledby": "h-exp" }, el("h2#h-exp", "Points expiry"), expBox)),
      el("section.panel", { "aria-labelledby": "h-liab" }, el("h2#h-liab", "Points liability"), G.liabilityPanel(token)),
      el("section.panel", { "aria-labelledby": "h-hooks" }, el("h2#h-hooks", "Webhooks"), G.webhooksPanel(token)));

    let traces = [];
    function renderList() {
      const f = filter.value;
      const rows = traces
        .filter((t) => f === "all" || (f === "business" ? kindOf(t.root_name) !== "other" : kindOf(t.root_name) === f))
        .sort((a, b) => (b.error - a.error) || (b.duration_ms - a.duration_ms))
        .slice(0, 60);
      if (!rows.length) return G.clear(listBox, el("p.muted", "No traces of this kind in the buffer yet. Buy something in the shop."));
      G.clear(listBox, el("div.table-wrap", el("table#traces-table",
        el("thead", el("tr", el("th", "Started"), el("th", "Operation"), el("th.num", "Duration"), el("th.num", "Spans"), el("th", "Outcome"))),
        el("tbody", rows.map((t) => el("tr", { "data-trace": t.trace_id, "data-root": t.root_name },
          el("td.nowrap", G.time(t.start)),
          el("td", el("a", { href: "/ui/trace/" + t.trace_id }, t.root_name), el("div.small.muted", kindOf(t.root_name))),
          el("td.num", G.ms(t.duration_ms)),
          el("td.num", t.span_count, t.dropped_spans ? " (+" + t.dropped_spans + " dropped)" : ""),
          el("td", t.error ? el("span.tag.error", "failed") : el("span.tag.ok", "ok"),
            t.duration_ms > 1000 ? [" ", el("span.tag.slow", "slow")] : null)))))));
    }
    filter.addEventListener("change", renderList);

    async function loadTraces() {
      const r = await call("GET", "/v1/admin/traces?limit=500");
      if (!r.ok) {
        if (r.status === 401 || r.status === 403) { G.signOutAdmin(); }
        return G.clear(listBox, G.problemBox(r.body, r.status, "Traces could not be loaded"));
      }
      traces = r.body.traces || [];
      renderList();
      await drawCharts();
    }

    // ---- Charts, derived from the trace buffer (see drawCharts).
    const MINUTES = 15;
    function minuteBuckets() {
      const now = Date.now();
      const end = Math.ceil(now / 60000) * 60000;
      return Array.from({ length: MINUTES }, (_, i) => ({ t: end - (MINUTES - i) * 60000, a: 0, b: 0 }));
    }
    function bucketOf(buckets, ms) {
      const i = Math.floor((ms - buckets[0].t) / 60000);
      return i >= 0 && i < buckets.length ? buckets[i] : null;
    }
    // barChart draws stacked bars a (up) and b (up, or down when mirrored).
    function barChart(title, desc, buckets, cls, labels, mirrored) {
      const W = 320, H = 170, L = 44, B = 22, T = 10;
      const maxA = Math.max(1, ...buckets.map((x) => (mirrored ? x.a : x.a + x.b)));
      const maxB = mirrored ? Math.max(1, ...buckets.map((x) => x.b)) : 0;
      const plotH = H - B - T;
      const zero = mirrored ? T + (plotH * maxA) / (maxA + maxB) : H - B;
      const scale = mirrored ? plotH / (maxA + maxB) : plotH / maxA;
      const bw = (W - L - 6) / buckets.length;
      const g = [];
      g.push(G.svg("line", { class: "axis", x1: L, y1: zero, x2: W, y2: zero }));
      g.push(G.svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
      g.push(G.svg("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, maxA));
      if (mirrored) g.push(G.svg("text", { x: L - 4, y: H - B, "text-anchor": "end" }, "−" + maxB));
      buckets.forEach((x, i) => {
        const bx = L + 3 + i * bw;
        const ha = x.a * scale, hb = x.b * scale;
        const tip = new Date(x.t).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" }) + ": " + labels[0] + " " + x.a + ", " + labels[1] + " " + x.b;
        if (ha) g.push(G.svg("rect", { class: cls[0], x: bx, y: zero - ha, width: bw - 2, height: ha }, G.svg("title", {}, tip)));
        if (hb) g.push(G.svg("rect", mirrored
          ? { class: cls[1], x: bx, y: zero, width: bw - 2, height: hb }
          : { class: cls[1], x: bx, y: zero - ha - hb, width: bw - 2, height: hb }, G.svg("title", {}, tip)));
        if (i % 5 === 0 || i === buckets.length - 1) {
          g.push(G.svg("text", { x: i === buckets.length - 1 ? bx + bw - 2 : bx, y: H - 6, "text-anchor": i === buckets.length - 1 ? "end" : "start" }, new Date(x.t).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })));
        }
      });
      return chartPanel(title, desc, G.svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title + ". " + desc }, g),
        [[cls[0], labels[0]], [cls[1], labels[1]]]);
    }
    function chartPanel(title, desc, svg, legend) {
      return el("figure.panel.chart",
        el("figcaption", el("h3", title), el("p.small.muted", desc)), svg,
        legend ? el("div.legend", legend.map(([c, t]) => el("span", el("i." + c), t))) : null);
    }
    function hbarChart(title, desc, rows) {
      const W = 340, rowH = 22, L = 150;
      const H = Math.max(40, rows.length * rowH + 10);
      const max = Math.max(1, ...rows.map((r) => r.value));
      const g = rows.map((r, i) => {
        const w = ((W - L - 58) * r.value) / max;
        return G.svg("g", {},
          G.svg("text", { x: L - 6, y: i * rowH + 16, "text-anchor": "end" }, r.label),
          G.svg("rect", { class: "b-step", x: L, y: i * rowH + 5, width: Math.max(1, w), height: rowH - 8 }, G.svg("title", {}, r.label + ": " + G.ms(r.value))),
          G.svg("text", { x: L + w + 4, y: i * rowH + 16 }, G.ms(r.value)));
      });
      if (!rows.length) g.push(G.svg("text", { x: 10, y: 24 }, "No checkouts in the buffer yet."));
      return chartPanel(title, desc, G.svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title + ". " + rows.map((r) => r.label + " " + G.ms(r.value)).join(", ") }, g));
    }

    // drawCharts: the checkout rate comes from the trace list; step durations
    // and points flows from the spans of the most recent traces (at most 25
    // fetched per refresh). The trace buffer holds the last 2,000 traces of
    // this process, so the charts cover what it still holds.
    async function drawCharts() {
      const rate = minuteBuckets();
      for (const t of traces) {
        if (!isCheckout(t)) continue;
        const b = bucketOf(rate, parseTime(t.start));
        if (b) { if (t.error) b.b++; else b.a++; }
      }
      const recent = traces.filter((t) => kindOf(t.root_name) !== "other" && bucketOf(rate, parseTime(t.start))).slice(0, 25);
      const details = await Promise.all(recent.map((t) => call("GET", "/v1/admin/traces/" + t.trace_id)));
      const steps = {};
      const flows = minuteBuckets();
      for (const d of details) {
        if (!d.ok) continue;
        const spans = d.body.spans || [];
        const proc = spans.find((s) => s.name === "checkout.process");
        if (proc) {
          for (const s of spans) {
            if (s.parent_span_id !== proc.span_id || /^sql\./.test(s.name)) continue;
            (steps[s.name] = steps[s.name] || []).push(s.duration_ms);
          }
        }
        for (const s of spans) {
          const a = s.attributes || {};
          const b = bucketOf(flows, parseTime(s.start));
          if (!b) continue;
          if (s.name === "loyalty.earn_points" && typeof a["loyalty.total_points_earned"] === "number") b.a += a["loyalty.total_points_earned"];
          if (s.name === "loyalty.capture_hold" && typeof a["loyalty.points"] === "number") b.b += a["loyalty.points"];
          if (/^loyalty\.(redeem_points|transfer)/.test(s.name) && s.status.code !== "error") {
            const v = a["loyalty.points_deducted"] ?? a["loyalty.points"];
            if (typeof v === "number") b.b += v;
          }
        }
      }
      const stepRows = Object.entries(steps)
        .map(([label, v]) => ({ label, value: v.reduce((x, y) => x + y, 0) / v.length }))
        .sort((x, y) => y.value - x.value);
      G.clear(chartsBox,
        barChart("Checkouts per minute", "Completed and failed checkouts started in each minute.", rate, ["b-ok", "b-bad"], ["completed", "failed"], false),
        hbarChart("Checkout step durations", "Mean duration of each saga step over the " + details.filter((d) => d.ok && (d.body.spans || []).some((s) => s.name === "checkout.process")).length + " most recent checkouts.", stepRows),
        barChart("Points flows per minute", "Points earned (up) and spent on checkouts, redemptions and transfers (down), from recent traces.", flows, ["b-earn", "b-spend"], ["earned", "spent"], true));
    }

    // ---- Payment simulator faults
    async function loadPayFaults() {
      const r = await call("GET", "/v1/admin/faults/payment");
      if (r.status === 404) return G.clear(payBox, el("p.muted", "This server does not use the payment simulator, so there is nothing to switch."));
      if (!r.ok) return G.clear(payBox, G.problemBox(r.body, r.status));
      const f = r.body;
      const lat = el("input#pay-latency", { type: "number", min: 0, max: 60000, step: 50, value: f.latency_ms, inputmode: "numeric" });
      const rate = el("input#pay-decline-rate", { type: "number", min: 0, max: 100, step: 1, value: f.decline_rate_percent, inputmode: "numeric" });
      const code = el("select#pay-decline-code", ["generic_decline", "insufficient_funds", "lost_card", "processing_error"].map((c) =>
        el("option", { value: c, selected: c === f.decline_code }, c)));
      const out = el("div", { "aria-live": "polite" });
      const save = el("button#pay-save", { type: "submit" }, "Apply");
      const active = f.latency_ms > 0 || f.decline_rate_percent > 0;
      G.clear(payBox,
        el("p", active ? el("span.tag.error#pay-state", "faults on") : el("span.tag.ok#pay-state", "normal")),
        el("form", {
          onsubmit: (e) => {
            e.preventDefault();
            G.busy(save, async () => {
              const p = await call("PUT", "/v1/admin/faults/payment", {
                latency_ms: parseInt(lat.value, 10) || 0, decline_rate_percent: parseInt(rate.value, 10) || 0, decline_code: code.value,
              });
              if (!p.ok) return G.clear(out, G.problemBox(p.body, p.status, "Not applied"));
              await loadPayFaults();
              G.append(payBox, [G.okBox("Applied: latency " + p.body.latency_ms + " ms, " + p.body.decline_rate_percent + "% declined as " + p.body.decline_code + ".")]);
            });
          },
        },
        G.field("Added latency (ms)", lat, "Every charge waits this long."),
        G.field("Decline rate (%)", rate, "Share of successful-card charges declined anyway."),
        G.field("Decline code", code),
        el("div.row", save,
          el("button.secondary", { type: "button", onclick: () => { lat.value = 0; rate.value = 0; save.click(); } }, "Reset to normal")), out));
    }

    // ---- Fulfilment provider faults (Loyalty II)
    async function loadFulFaults() {
      const r = await call("GET", "/v1/admin/faults/fulfillment");
      if (r.status === 404) return G.clear(fulBox, el("p.muted#ful-unavailable", "The fulfilment provider's fault switch is not available on this server yet."));
      const known = r.ok;
      const f = known ? r.body : { fail: false, delay_ms: 0 };
      const fail = el("input#ful-fail", { type: "checkbox", checked: !!f.fail });
      const delay = el("input#ful-delay", { type: "number", min: 0, step: 50, value: f.delay_ms || 0, inputmode: "numeric" });
      const out = el("div", { "aria-live": "polite" });
      const save = el("button", { type: "submit" }, "Apply");
      G.clear(fulBox,
        known ? el("p", f.fail || f.delay_ms ? el("span.tag.error", "faults on") : el("span.tag.ok", "normal")) : el("p.small.muted", "The current setting cannot be read; applying sets it."),
        el("form", {
          onsubmit: (e) => {
            e.preventDefault();
            G.busy(save, async () => {
              const p = await call("PUT", "/v1/admin/faults/fulfillment", { fail: fail.checked, delay_ms: parseInt(delay.value, 10) || 0 });
              if (!p.ok) return G.clear(out, G.problemBox(p.body, p.status, "Not applied"));
              G.clear(out, G.okBox("Applied: fulfilment " + (p.body.fail ?? fail.checked ? "fails" : "succeeds") + ", delay " + (p.body.delay_ms ?? delay.value) + " ms."));
            });
          },
        },
        el("div.field", el("label.toggle", { for: "ful-fail" }, fail, "Fail every fulfilment")),
        G.field("Added delay (ms)", delay),
        el("div.row", save), out));
    }

    function renderExpiry() {
      const out = el("div", { "aria-live": "polite" });
      const run = el("button.secondary#run-expiry", {
        type: "button",
        onclick: () => G.busy(run, async () => {
          const r = await call("POST", "/v1/admin/expirations", {});
          if (r.status === 404 && r.body.code === "route_not_found") return G.clear(out, G.infoBox("Expiry is not available on this server yet."));
          if (!r.ok) return G.clear(out, G.problemBox(r.body, r.status, "Expiry did not run"));
          G.clear(out, G.okBox("Expiry ran: ", G.points(r.body.total_points_expired), " points expired across ", G.points(r.body.accounts_affected), " accounts."));
        }),
      }, "Run expiry now");
      G.clear(expBox, el("p.small.muted", "Applies the programme's expiry policy now. Running it twice expires nothing twice."), run, out);
    }

    let timer = null;
    auto.addEventListener("change", () => {
      clearInterval(timer);
      if (auto.checked) timer = setInterval(loadTraces, 10000);
    });
    refreshBtn.addEventListener("click", () => G.busy(refreshBtn, loadTraces));
    renderExpiry();
    await Promise.all([loadTraces(), loadPayFaults(), loadFulFaults()]);
    root.dataset.ready = "ops";
  };
})();
