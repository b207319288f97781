// The operations view's points liability panel (issue 21): the liability
// report for a chosen period, and the same report as a CSV download.
(function () {
  const G = window.Godwit;
  const el = G.el;

  const words = {
    opening: "Opening balance", earned: "Earned", redeemed: "Redeemed", transferred_out: "Transferred out",
    expired: "Expired (breakage)", reversed: "Reversed", adjusted: "Adjusted", other: "Other (unmapped types)", closing: "Closing balance",
  };

  // The input's local date-time as RFC 3339 in UTC ("" when empty).
  function rfc3339(input) {
    if (!input.value) return "";
    const t = new Date(input.value);
    return isNaN(t) ? "" : t.toISOString().replace(/\.000Z$/, "Z");
  }

  // A datetime-local value for t (the browser's local time).
  function localValue(t) {
    const p = (n) => String(n).padStart(2, "0");
    return t.getFullYear() + "-" + p(t.getMonth() + 1) + "-" + p(t.getDate()) + "T" + p(t.getHours()) + ":" + p(t.getMinutes());
  }

  // liabilityPanel returns the panel's content; token is the admin token.
  G.liabilityPanel = function (token) {
    const now = new Date();
    const from = el("input#liability-from", { type: "datetime-local", value: localValue(new Date(now.getFullYear(), now.getMonth(), 1)) });
    const to = el("input#liability-to", { type: "datetime-local" });
    const show = el("button#liability-show", { type: "submit" }, "Show report");
    const out = el("div#liability-report", { "aria-live": "polite" });
    let blobURL = null;

    async function load() {
      const q = new URLSearchParams({ from: rfc3339(from) });
      if (rfc3339(to)) q.set("to", rfc3339(to));
      const path = "/v1/admin/reports/liability?" + q.toString();
      const r = await G.api("GET", path, { token });
      if (r.status === 404 && r.body.code === "route_not_found") return G.clear(out, G.infoBox("The liability report is not available on this server yet."));
      if (!r.ok) return G.clear(out, G.problemBox(r.body, r.status, "The report could not be made"));
      const rep = r.body;
      // The CSV is fetched with the token too, then offered as a file.
      let link = null;
      try {
        const res = await fetch(path, { headers: { Accept: "text/csv", Authorization: "Bearer " + token }, cache: "no-store" });
        if (res.ok) {
          if (blobURL) URL.revokeObjectURL(blobURL);
          blobURL = URL.createObjectURL(new Blob([await res.text()], { type: "text/csv" }));
          const name = "liability-" + rep.from.replace(/[-:]/g, "") + "-" + rep.to.replace(/[-:]/g, "") + ".csv";
          link = el("a#liability-csv", { href: blobURL, download: name }, "Download CSV");
        }
      } catch { /* the table still shows */ }
      const currencies = rep.point_values.map((v) => v.currency);
      G.clear(out,
        el("p.small.muted", "From ", G.when(rep.from), " to ", G.when(rep.to), " (effective times; the end is exclusive). ",
          rep.point_values.length ? "A point is worth " + rep.point_values.map((v) => v.value + " " + v.currency).join(", ") + "." : "No point_value in the program file: points only."),
        el("div.table-wrap", el("table#liability-table",
          el("thead", el("tr", el("th", "Figure"), el("th.num", "Points"), currencies.map((c) => el("th.num", c)))),
          el("tbody", rep.lines.map((l) => el("tr", { "data-category": l.category, "data-detail": l.detail || "" },
            el("td", l.detail ? el("span.small.muted", "\u2003", l.detail) : el("strong", words[l.category] || l.category)),
            el("td.num", G.points(l.points)),
            l.money.map((m) => el("td.num", G.money(m)))))))),
        el("p#liability-breakage", "Breakage rate (expired ÷ (redeemed + expired)): ",
          el("strong", rep.breakage_rate === null ? "— (nothing redeemed or expired)" : (Number(rep.breakage_rate) * 100).toFixed(2) + " %")),
        link);
    }

    return el("form", {
      onsubmit: (e) => { e.preventDefault(); G.busy(show, load); },
    },
    el("p.small.muted", "What the programme owes its members at the start and end of a period, and every movement between, valued at the program file's point_value."),
    el("div.row", G.field("From", from), G.field("To (empty: now)", to), show), out);
  };
})();
