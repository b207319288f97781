// Member portal: sign in (token or demo picker), balance and tier, statement
// with breakdowns, redemption catalogue, transfers.
"use strict";
(function () {
  const G = window.Godwit;
  const { el } = G;

  function signInView(root, message) {
    const tok = el("textarea#member-token", { autocomplete: "off", spellcheck: "false", rows: 3 });
    const err = el("div", { "aria-live": "polite" });
    const go = el("button", { type: "submit" }, "Sign in");
    const form = el("form.panel", {
      onsubmit: async (e) => {
        e.preventDefault();
        const claims = G.decodeToken(tok.value);
        if (!claims || claims.scope !== "member" || !claims.sub) {
          G.clear(err, G.problemBox({ code: "invalid_token", detail: "that is not a member token: it should be three dot-separated parts with scope member" }));
          return;
        }
        await G.busy(go, async () => {
          const r = await G.api("GET", "/v1/members/" + encodeURIComponent(claims.sub), { token: tok.value.trim() });
          if (!r.ok) return G.clear(err, G.problemBox(r.body, r.status, "Sign-in failed"));
          G.setMember(tok.value.trim(), claims.sub);
          location.reload();
        });
      },
    }, el("h2", "Sign in with a member token"),
      G.field("Member token", tok, "Paste the bearer token you were given (godwit token member <id>). It is kept only in this browser tab."),
      el("div.row", go), err);
    const kids = [el("h1", "Member portal"), message || null];
    if (G.config.demo && G.config.demo_members && G.config.demo_members.length) {
      const perr = el("div", { "aria-live": "polite" });
      kids.push(el("section.panel", { "aria-labelledby": "h-demo" },
        el("h2#h-demo", "Demo members"),
        el("p.muted.small", "Demo mode: pick a sample member to sign in without a token."),
        el("div.picker", G.config.demo_members.map((dm) => el("button.secondary", {
          type: "button", "data-demo-member": dm.id,
          onclick: async (e) => {
            await G.busy(e.currentTarget, async () => {
              try {
                G.setMember(await G.demoToken("member", dm.id), dm.id);
                location.reload();
              } catch (p) { G.clear(perr, G.problemBox(p, 0, "Demo sign-in failed")); }
            });
          },
        }, "Sign in as " + dm.name + " (" + dm.id + ")"))), perr));
    }
    kids.push(form);
    G.clear(root, kids);
    root.dataset.ready = "member-signin";
  }

  // breakdownItems explains one statement movement.
  function breakdownItems(b, type) {
    b = b || {};
    const items = [];
    const add = (...k) => items.push(el("li", k));
    if (b.activity_type) add("Activity: ", b.activity_type, b.external_id ? " (" + b.external_id + ")" : "");
    if (b.base_points) add("Base: ", G.points(b.base_points), b.earning_rate ? " at " + b.earning_rate : "");
    if (b.tier_bonus) add("Tier bonus", b.tier ? " (" + b.tier + (b.tier_multiplier ? " ×" + b.tier_multiplier : "") + ")" : "", ": ", G.points(b.tier_bonus));
    for (const p of b.promotions || []) add("Promotion “", p.name || p.id, "”: ", G.points(p.points));
    if (b.promo_bonus && !(b.promotions || []).length) add("Promotion bonus: ", G.points(b.promo_bonus));
    if (b.list_points) add("Catalogue price: ", G.points(b.list_points));
    if (b.discount) add("Tier discount: ", G.points(b.discount));
    if (b.option_id) add("Redeemed: ", el("code", b.option_id));
    if (b.partner_id) add("Partner: ", b.partner_id, b.partner_units ? " (" + G.points(b.partner_units) + " partner units)" : "");
    if (b.to_member_id) add("To member: ", b.to_member_id);
    if (b.from_member_id) add("From member: ", b.from_member_id);
    if (b.reference) add("Reference: ", el("code", b.reference));
    if (b.policy) add("Expiry policy: ", b.policy);
    if (b.reversed_transaction_id) add("Reverses ", el("code", b.reversed_transaction_id));
    if (b.status_points) add("Status points: ", G.points(b.status_points));
    if (b.status_points_reverted) add("Status points reverted: ", G.points(b.status_points_reverted));
    if (b.reason) add("Reason: ", b.reason);
    if (!items.length) add(type);
    return el("ul.breakdown", items);
  }

  G.pages.member = async function (root) {
    await G.configReady;
    const m = G.member();
    if (!m) return signInView(root);
    const r = await G.api("GET", "/v1/members/" + encodeURIComponent(m.id), { token: m.token });
    if (!r.ok) {
      if (r.status === 401 || r.status === 403) G.signOutMember();
      return signInView(root, G.problemBox(r.body, r.status, "Your session could not be used"));
    }
    const summary = el("div#summary");
    const statement = el("div#statement");
    const redeemBox = el("div#redeem");
    const transferBox = el("div#transfer");
    G.clear(root,
      el("h1", "Member portal"),
      summary,
      el("div.grid.cols-even",
        el("section.panel", { "aria-labelledby": "h-redeem" }, el("h2#h-redeem", "Redeem points"), redeemBox),
        el("section.panel", { "aria-labelledby": "h-transfer" }, el("h2#h-transfer", "Transfer points"), transferBox)),
      el("section.panel", { "aria-labelledby": "h-statement" }, el("h2#h-statement", "Statement"), statement));

    function renderSummary(mem) {
      const nt = mem.next_tier;
      let tierKids;
      if (nt) {
        const pct = nt.threshold > 0 ? Math.min(100, Math.floor((mem.status_points * 100) / nt.threshold)) : 100;
        const bar = el("span");
        bar.style.width = pct + "%";
        tierKids = [
          el("div.progress", { role: "progressbar", "aria-valuemin": 0, "aria-valuemax": nt.threshold, "aria-valuenow": mem.status_points,
            "aria-label": "Status points towards " + nt.tier }, bar),
          el("div.small#tier-progress", G.points(mem.status_points), " of ", G.points(nt.threshold), " status points: ",
            el("strong", G.points(nt.points_needed)), " more to reach ", el("strong", nt.tier), " (", mem.status_year, " status year)."),
        ];
      } else {
        tierKids = [el("div.small#tier-progress", "Top tier. ", G.points(mem.status_points), " status points in ", mem.status_year, ".")];
      }
      const expiring = el("div#expiring", el("p.small.muted", "Loading…"));
      G.clear(summary,
        el("p", "Signed in as ", el("strong", mem.name || mem.id), " (", el("code", mem.id), ")."),
        el("div.stats",
          el("div.stat", el("div.label", "Balance"), el("div.value#balance", G.points(mem.balance)), el("div.small.muted", "spendable points")),
          el("div.stat", el("div.label", "Pending"), el("div.value#pending", G.points(mem.pending)), el("div.small.muted", "held for checkouts or redemptions in progress")),
          el("div.stat", el("div.label", "Tier"), el("div.value#tier", mem.tier_name || mem.tier), tierKids),
          el("div.stat", el("div.label", "Expiring soon"), expiring)));
      loadPoints(expiring);
    }

    // loadPoints fills the "Expiring soon" card from GET /v1/members/{id}/points:
    // the lots with points left, soonest-expiring first, and the points still
    // pending (a purchase's return window, a future stay or flight).
    async function loadPoints(box) {
      const p = await G.api("GET", "/v1/members/" + encodeURIComponent(m.id) + "/points", { token: m.token });
      if (!p.ok) return G.clear(box, el("p.small.muted", "Expiring points could not be loaded."));
      const lots = (p.body.expiring || []).slice(0, 5);
      const pending = p.body.pending || [];
      G.clear(box,
        lots.length
          ? el("ul.small#expiring-list", lots.map((x) => el("li", { "data-points": x.points, "data-expires": x.expires_at },
            G.points(x.points), " on ", G.when(x.expires_at))))
          : el("p.small.muted#expiring-none", "No points to expire."),
        p.body.expiry_policy === "inactivity" && lots.length
          ? el("p.small.muted", "They expire together after inactivity: any earning or redeeming pushes the date back.") : null,
        pending.length
          ? el("p.small#pending-points", { "data-points": p.body.pending_total },
            G.points(p.body.pending_total), " points pending, the first ", G.points(pending[0].points), " vesting ", G.when(pending[0].vests_at), ".")
          : null);
    }

    async function loadStatement() {
      const s = await G.api("GET", "/v1/members/" + encodeURIComponent(m.id) + "/statement?limit=50", { token: m.token });
      if (!s.ok) return G.clear(statement, G.problemBox(s.body, s.status, "The statement could not be loaded"));
      const entries = s.body.entries || [];
      const pending = s.body.pending || [];
      // Pending points are on no account of the member's yet: listed above the movements.
      const pendingList = pending.length
        ? el("div#statement-pending", el("h3", "Pending"), el("ul.small", pending.map((p) => el("li", { "data-type": p.activity_type, "data-points": p.points },
          G.points(p.points), " points from a ", p.activity_type.replace("_", " "), ", vesting ", G.when(p.vests_at)))))
        : null;
      if (!entries.length) return G.clear(statement, pendingList, el("p.muted", "No movements yet."));
      G.clear(statement, pendingList, el("div.table-wrap", el("table#statement-table",
        el("thead", el("tr", el("th", "When"), el("th", "Type"), el("th.num", "Points"), el("th.num", "Balance after"), el("th", "Breakdown"), el("th", "Trace"))),
        el("tbody", entries.map((e) => el("tr", { "data-type": e.type, "data-points": e.points },
          el("td.nowrap", G.when(e.created_at)),
          el("td", el("span.tag", e.type)),
          el("td.num", el("span." + (e.points >= 0 ? "pos" : "neg"), G.signed(e.points))),
          el("td.num", G.points(e.balance_after)),
          el("td", breakdownItems(e.breakdown, e.type)),
          el("td", G.traceLink(e.trace_id, "trace"))))))),
      s.body.next_cursor ? el("p.small.muted", "Showing the newest 50 movements.") : null);
    }

    async function refresh() {
      const again = await G.api("GET", "/v1/members/" + encodeURIComponent(m.id), { token: m.token });
      if (again.ok) renderSummary(again.body);
      await loadStatement();
    }

    async function loadRedemptions() {
      const o = await G.api("GET", "/v1/redemption-options", { token: m.token });
      if (o.status === 404) {
        return G.clear(redeemBox, el("p.muted#redeem-unavailable", "Redemption is not available on this server yet."));
      }
      if (!o.ok) return G.clear(redeemBox, G.problemBox(o.body, o.status, "The catalogue could not be loaded"));
      const out = el("div#redeem-result", { "aria-live": "polite" });
      const opts = o.body.options || [];
      G.clear(redeemBox, out, opts.length ? el("div.table-wrap", el("table#redeem-table",
        el("thead", el("tr", el("th", "Reward"), el("th.num", "Points"), el("th", el("span.sr-only", "Action")))),
        el("tbody", opts.map((op) => el("tr", { "data-option": op.id },
          el("td", op.name || op.id, el("div.small.muted", op.type || "")),
          el("td.num", op.member_cost && op.member_cost.final !== op.points
            ? [G.points(op.member_cost.final), el("div.small.muted", G.points(op.points) + " less your tier discount of " + G.points(op.member_cost.discount))]
            : G.points(op.points)),
          el("td", el("button", {
            type: "button", "aria-label": "Redeem " + (op.name || op.id),
            onclick: (e) => G.busy(e.currentTarget, () => redeem(op, out)),
          }, "Redeem"))))))) : el("p.muted", "The catalogue is empty."));
    }

    async function redeem(op, out) {
      const r = await G.api("POST", "/v1/members/" + encodeURIComponent(m.id) + "/redemptions", { body: { option_id: op.id }, token: m.token, idem: G.newKey() });
      if (!r.ok) return G.clear(out, G.problemBox(r.body, r.status, "Could not redeem " + (op.name || op.id)));
      G.clear(out, G.okBox(el("strong", "Redeemed " + (op.name || op.id) + ". "),
        G.points(r.body.points_deducted), " points deducted; new balance ", G.points(r.body.new_balance), ".",
        r.body.confirmation ? [" Confirmation ", el("code", typeof r.body.confirmation === "string" ? r.body.confirmation : JSON.stringify(r.body.confirmation)), "."] : ""));
      refresh();
    }

    function renderTransfer() {
      const out = el("div#transfer-result", { "aria-live": "polite" });
      const toPartner = el("input#to-partner", { type: "radio", name: "to-kind", value: "partner", checked: true });
      const toMember = el("input#to-member", { type: "radio", name: "to-kind", value: "member" });
      const target = el("input#transfer-target", { type: "text", autocomplete: "off", required: true });
      const pts = el("input#transfer-points", { type: "number", min: 1, step: 1, required: true, inputmode: "numeric" });
      const go = el("button", { type: "submit" }, "Transfer");
      const targetField = G.field("Partner id", target, "A partner of the programme, such as an airline or hotel scheme.");
      const relabel = () => {
        const isPartner = toPartner.checked;
        targetField.querySelector("label").textContent = isPartner ? "Partner id" : "Member id";
        targetField.querySelector(".hint").textContent = isPartner
          ? "A partner of the programme, such as an airline or hotel scheme."
          : "The member who receives the points (e.g. family pooling).";
      };
      toPartner.addEventListener("change", relabel);
      toMember.addEventListener("change", relabel);
      G.clear(transferBox, el("form#transfer-form", {
        onsubmit: (e) => {
          e.preventDefault();
          G.busy(go, async () => {
            const body = { points: parseInt(pts.value, 10) || 0 };
            if (toPartner.checked) body.partner_id = target.value.trim(); else body.to_member_id = target.value.trim();
            const r = await G.api("POST", "/v1/members/" + encodeURIComponent(m.id) + "/transfers", { body, token: m.token, idem: G.newKey() });
            if (r.status === 404 && r.body.code === "route_not_found") return G.clear(out, G.infoBox("Transfers are not available on this server yet."));
            if (!r.ok) return G.clear(out, G.problemBox(r.body, r.status, "The transfer did not go through"));
            G.clear(out, G.okBox("Transferred ", G.points(body.points), " points to ", body.partner_id || body.to_member_id, ". New balance ", G.points(r.body.new_balance), "."));
            refresh();
          });
        },
      },
      el("fieldset", el("legend", "Send to"),
        el("div.row", el("span.row", toPartner, el("label", { for: "to-partner" }, "A partner")),
          el("span.row", toMember, el("label", { for: "to-member" }, "Another member")))),
      targetField, G.field("Points", pts), el("div.row", go), out));
    }

    renderSummary(r.body);
    renderTransfer();
    await Promise.all([loadStatement(), loadRedemptions()]);
    root.dataset.ready = "member";
  };
})();
