// Trace waterfall: the spans of one trace as bars on a time axis, nested by
// parent, with attributes and events on click; failing spans and the span that
// spent the most time itself are marked. Work that completed later in a trace of
// its own (a webhook finishing a checkout, joined by a span link) is drawn
// beside it on a shared time axis.
"use strict";
(function () {
  const G = window.Godwit;
  const { el } = G;

  // selfTimes: each span's duration minus the time covered by its children.
  function selfTimes(spans, byParent, t) {
    const out = {};
    for (const s of spans) {
      const kids = (byParent[s.span_id] || []).map((c) => [Math.max(t(c.start), t(s.start)), Math.min(t(c.end), t(s.end))]).filter(([a, b]) => b > a);
      kids.sort((x, y) => x[0] - y[0]);
      let covered = 0, curA = null, curB = null;
      for (const [a, b] of kids) {
        if (curB === null || a > curB) { if (curB !== null) covered += curB - curA; curA = a; curB = b; } else curB = Math.max(curB, b);
      }
      if (curB !== null) covered += curB - curA;
      out[s.span_id] = Math.max(0, t(s.end) - t(s.start) - covered);
    }
    return out;
  }

  function valueText(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }

  // linkSections draws the traces joined to this one by span links: those that
  // continue it (linked_from: the asynchronous completion, such as the webhook's
  // payment.webhook.process) on one time axis with this trace, and those it
  // continues (links_to).
  function linkSections(view, t, t0, t1, spanName) {
    const from = view.linked_from || [], to = view.links_to || [];
    const out = [];
    if (from.length) {
      const known = from.filter((l) => l.other_start && l.other_end);
      const end = Math.max(t1, ...known.map((l) => t(l.other_end)));
      const span = Math.max(end - t0, 0.001);
      const bar = (a, b, cls) => {
        const x = el("span.wf-bar" + cls);
        x.style.left = ((a - t0) / span) * 100 + "%";
        x.style.width = ((b - a) / span) * 100 + "%";
        return x;
      };
      const rows = [
        el("div.wf-axis", { "aria-hidden": "true" }, el("div.wf-name", "Trace"), el("div.ticks",
          [0, 1, 2, 3, 4, 5].map((i) => { const tk = el("span.tick", G.ms((span * i) / 5)); tk.style.left = i * 20 + "%"; if (i === 5) tk.style.transform = "translateX(-100%)"; return tk; }))),
        el("div.wf-row.wf-here", { role: "listitem", "data-trace": view.trace_id },
          el("span.wf-name", "This trace ", el("span.svc", G.ms(t1 - t0))), el("span.wf-track", bar(t0, t1, ".k-server"))),
      ];
      for (const l of from) {
        const has = l.other_start && l.other_end;
        const after = has ? t(l.other_start) - t0 : null;
        const name = l.other_span_name || "span " + l.other_span_id;
        const root = l.other_root_name && l.other_root_name !== name ? l.other_root_name : "";
        const when = has ? "+" + G.ms(after) + " · " + G.ms(l.other_duration_ms) + " " : "";
        rows.push(el("a.wf-row.wf-linked" + (l.other_error || l.other_trace_failed ? ".is-error" : ""), {
          href: "/ui/trace/" + encodeURIComponent(l.other_trace_id), role: "listitem", "data-trace": l.other_trace_id, "data-span": l.other_span_name || "",
          title: (root ? root + " · " : "") + "trace " + l.other_trace_id,
          "aria-label": name + (root ? " in " + root : "") + (has ? ", started " + G.ms(after) + " after this trace began, took " + G.ms(l.other_duration_ms) : "") + ", links to " + spanName(l.span_id),
        },
        el("span.wf-name", "↳ ", name, " ", el("span.svc", when + "→ " + spanName(l.span_id))),
        el("span.wf-track", has ? bar(t(l.other_start), t(l.other_end), ".k-consumer") : el("span.wf-dur", "times unknown (trace no longer buffered)"))));
      }
      out.push(el("section#linked-from", { "aria-labelledby": "h-linked-from" },
        el("h2#h-linked-from", "Continued in"),
        el("p.small.muted", "Traces of their own that link to a span of this one: work this request started that finished later, such as a payment webhook completing the checkout. Select one to open it."),
        el("div.wf", { role: "list", "aria-label": "This trace and the traces that continue it, on one time axis" }, rows)));
    }
    if (to.length) {
      out.push(el("section#links-to", { "aria-labelledby": "h-links-to" },
        el("h2#h-links-to", "Continues"),
        el("ul", to.map((l) => el("li", { "data-trace": l.other_trace_id },
          el("strong", spanName(l.span_id)), " links to ",
          l.other_span_name ? el("code", l.other_span_name) : el("span", "span ", el("code", l.other_span_id)),
          " in ", G.traceLink(l.other_trace_id, l.other_root_name || "trace " + l.other_trace_id.slice(0, 12) + "…"),
          l.buffered ? null : el("span.muted", " (no longer in the buffer)"))))));
    }
    return out;
  }

  G.pages.trace = async function (root, traceID) {
    const token = await G.adminGate(root, "Trace " + traceID.slice(0, 12) + "…", "Trace details come from the server's recent-trace buffer and need an admin token.");
    if (!token) return;
    const r = await G.api("GET", "/v1/admin/traces/" + encodeURIComponent(traceID), { token });
    if (!r.ok) {
      G.clear(root, el("h1", "Trace"), G.problemBox(r.body, r.status,
        r.body.code === "trace_not_found" ? "This trace is not in the buffer (it was evicted, or another replica served it)" : "The trace could not be loaded"),
        el("p", el("a", { href: "/ui/ops" }, "Back to operations")));
      root.dataset.ready = "trace-missing";
      return;
    }
    const all = r.body.spans || [];
    const t = G.parseTime;
    const ids = new Set(all.map((s) => s.span_id));
    const byParent = {};
    for (const s of all) {
      const p = s.parent_span_id && ids.has(s.parent_span_id) ? s.parent_span_id : "";
      (byParent[p] = byParent[p] || []).push(s);
    }
    for (const k in byParent) byParent[k].sort((a, b) => t(a.start) - t(b.start));
    const self = selfTimes(all, byParent, t);
    const t0 = Math.min(...all.map((s) => t(s.start)));
    const t1 = Math.max(...all.map((s) => t(s.end)));
    const total = Math.max(t1 - t0, 0.001);
    const longest = all.reduce((best, s) => (!best || self[s.span_id] > self[best.span_id] ? s : best), null);
    const errorIDs = new Set(all.filter((s) => s.status && s.status.code === "error").map((s) => s.span_id));
    // The failing span: an error span none of whose children failed (where the failure started).
    const origins = new Set([...errorIDs].filter((id) => !(byParent[id] || []).some((c) => errorIDs.has(c.span_id))));
    const rootSpan = (byParent[""] || [])[0];

    const showDB = el("input#show-db", { type: "checkbox", checked: false });
    const wf = el("div.wf#waterfall", { role: "list", "aria-label": "Spans on a time axis" });
    const isDB = (s) => /^sql\./.test(s.name);
    // Database spans are hidden at first (there are dozens per checkout),
    // unless one of them is the one to look at.
    if (all.some((s) => isDB(s) && (errorIDs.has(s.span_id) || (longest && s.span_id === longest.span_id)))) showDB.checked = true;

    function ticks() {
      const n = 5;
      return Array.from({ length: n + 1 }, (_, i) => {
        const tk = el("span.tick", G.ms((total * i) / n));
        tk.style.left = (i * 100) / n + "%";
        if (i === n) tk.style.transform = "translateX(-100%)";
        return tk;
      });
    }

    function render() {
      const rows = [el("div.wf-axis", { "aria-hidden": "true" }, el("div.wf-name", "Span"), el("div.ticks", ticks()))];
      let n = 0;
      const walk = (s, depth) => {
        if (!showDB.checked && isDB(s)) return;
        const id = "span-" + s.span_id;
        const detailID = "detail-" + s.span_id;
        const left = ((t(s.start) - t0) / total) * 100;
        const width = ((t(s.end) - t(s.start)) / total) * 100;
        const bar = el("span.wf-bar.k-" + (isDB(s) ? "db" : s.kind || "internal"));
        bar.style.left = left + "%";
        bar.style.width = width + "%";
        const dur = el("span.wf-dur", G.ms(s.duration_ms));
        if (left + width > 80) { dur.classList.add("inside"); dur.style.right = Math.max(0, 100 - left - width) + "%"; } else { dur.style.left = "calc(" + (left + width) + "% + .3rem)"; }
        const marks = [];
        if (origins.has(s.span_id)) marks.push(el("span.wf-mark.err", { "data-mark": "failed" }, "failed here"));
        else if (errorIDs.has(s.span_id)) marks.push(el("span.wf-mark.err", { "data-mark": "error" }, "error"));
        if (longest && s.span_id === longest.span_id) marks.push(el("span.wf-mark.long", { "data-mark": "longest" }, "longest"));
        const name = el("span.wf-name", el("span.indent"), s.name, " ", el("span.svc", s.service), marks);
        name.firstChild.style.paddingLeft = depth * 0.9 + "rem";
        const row = el("button.wf-row" + (errorIDs.has(s.span_id) ? ".is-error" : "") + (longest && s.span_id === longest.span_id ? ".is-longest" : ""), {
          type: "button", id, role: "listitem", "aria-expanded": "false", "aria-controls": detailID, "data-span": s.name,
          "aria-label": s.name + ", " + G.ms(s.duration_ms) + (errorIDs.has(s.span_id) ? ", failed" : "") + (longest && s.span_id === longest.span_id ? ", longest self time" : ""),
          onclick: () => toggle(row, s, detailID),
        }, name, el("span.wf-track", bar, dur));
        rows.push(row);
        n++;
        for (const c of byParent[s.span_id] || []) walk(c, depth + 1);
      };
      for (const s of byParent[""] || []) walk(s, 0);
      G.clear(wf, rows);
      return n;
    }

    function toggle(row, s, detailID) {
      const open = row.getAttribute("aria-expanded") === "true";
      const existing = document.getElementById(detailID);
      if (existing) existing.remove();
      row.setAttribute("aria-expanded", String(!open));
      if (open) return;
      const attrs = Object.entries(s.attributes || {}).sort(([a], [b]) => a.localeCompare(b));
      const facts = [
        ["span id", s.span_id], ["parent", s.parent_span_id || "(root)"], ["kind", s.kind], ["service", s.service],
        ["starts at", "+" + G.ms(t(s.start) - t0)], ["duration", G.ms(s.duration_ms)], ["self time", G.ms(self[s.span_id])],
        ["status", s.status.code + (s.status.message ? ": " + s.status.message : "")],
      ];
      const detail = el("div.wf-detail", { id: detailID, role: "region", "aria-label": "Details of " + s.name },
        el("h3", s.name),
        el("table", el("tbody", facts.map(([k, v]) => el("tr", el("td", k), el("td", v))))),
        el("h3", "Attributes"),
        attrs.length ? el("table.attrs", el("tbody", attrs.map(([k, v]) => el("tr", el("td", k), el("td", valueText(v)))))) : el("p.muted", "None."),
        el("h3", "Events"),
        (s.events || []).length ? el("ul", s.events.map((e) => el("li", el("strong", e.name), " at +", G.ms(t(e.time) - t0),
          Object.keys(e.attributes || {}).length ? el("ul", Object.entries(e.attributes).map(([k, v]) => el("li", el("code", k), " = ", valueText(v)))) : null))) : el("p.muted", "None."),
        (s.links || []).length ? [el("h3", "Links"), el("ul", s.links.map((l) => el("li", G.traceLink(l.trace_id, "trace " + l.trace_id.slice(0, 12) + "…"), " span ", el("code", l.span_id))))] : null);
      row.after(detail);
    }

    showDB.addEventListener("change", render);
    const failed = [...origins].map((id) => all.find((s) => s.span_id === id));
    G.clear(root,
      el("p.small", el("a", { href: "/ui/ops" }, "← Operations")),
      el("h1", "Trace ", el("code", traceID)),
      el("div.stats",
        el("div.stat", el("div.label", "Operation"), el("div", el("strong", rootSpan ? rootSpan.name : "?"))),
        el("div.stat", el("div.label", "Duration"), el("div.value", G.ms(total))),
        el("div.stat", el("div.label", "Spans"), el("div.value", all.length), r.body.dropped_spans ? el("div.small", r.body.dropped_spans + " dropped") : null),
        el("div.stat", el("div.label", "Most time spent in"), el("div#longest-span", el("strong", longest ? longest.name : "?")),
          longest ? el("div.small.muted", G.ms(self[longest.span_id]) + " of its own time (" + Math.round((self[longest.span_id] * 100) / total) + "% of the trace)") : null)),
      failed.length ? el("div.alert.error", { role: "alert" }, el("strong", "Failed: "), failed.map((s, i) => [i ? "; " : "", s.name, s.status.message ? " — " + s.status.message : ""])) : null,
      el("div.spread",
        el("div.legend", el("span", el("i.k-server"), "server"), el("span", el("i"), "internal"), el("span", el("i.k-client"), "client"), el("span", el("i.k-db"), "database"),
          el("span", el("i.err"), "failed"), el("span", el("i.long"), "longest self time")),
        el("label.toggle", { for: "show-db" }, showDB, "Show database spans")),
      el("p.small.muted", "Select a span to see its attributes and events. “Longest” marks the span that spent the most time itself, not waiting for its children."),
      wf,
      linkSections(r.body, t, t0, t1, (id) => { const sp = all.find((x) => x.span_id === id); return sp ? sp.name : "span " + id; }));
    render();
    root.dataset.ready = "trace";
  };
})();
