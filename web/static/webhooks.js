// The operations view's webhooks panel (issue 20): the subscriptions, a
// chosen subscription's recent deliveries with failures marked, and a
// replay of one delivery's event.
"use strict";
(function () {
  const G = window.Godwit;
  const el = G.el;
  const BASE = "/v1/admin/webhook-subscriptions";

  // failed: the last attempt did not succeed — dead-lettered, or waiting
  // for a retry after a failed attempt.
  const failed = (d) => d.state === "dead" || (d.state === "pending" && d.attempts > 0);

  function subStateTag(s) {
    const cls = s.state === "active" ? "span.tag.ok" : s.state === "disabled" ? "span.tag.error" : "span.tag";
    return el(cls + ".sub-state", s.state);
  }

  function deliveryStateTag(d) {
    if (d.state === "dead") return el("span.tag.error.delivery-state", "failed: dead-lettered");
    if (failed(d)) return [el("span.tag.error.delivery-state", "failed"), el("div.small.muted", "retry at ", G.time(d.next_attempt_at))];
    if (d.state === "delivered") return el("span.tag.ok.delivery-state", "delivered");
    return el("span.tag.delivery-state", d.state);
  }

  // What the last attempt got back: the status code, or why there was none.
  function response(d) {
    if (d.response_status) return String(d.response_status);
    return d.attempts > 0 ? "no response" : "—";
  }

  // webhooksPanel returns the panel's content; token is the admin token.
  G.webhooksPanel = function (token) {
    const call = (method, path, body) => G.api(method, path, { token, body });
    const subsBox = el("div#webhook-subs");
    const delBox = el("div#webhook-deliveries", { "aria-live": "polite" });
    const result = el("div#webhook-result", { "aria-live": "polite" });
    const heading = el("h3#h-deliveries", "Recent deliveries");
    const filter = el("select#delivery-filter",
      el("option", { value: "all" }, "All"),
      el("option", { value: "failed" }, "Failures only"),
      el("option", { value: "pending" }, "Pending"),
      el("option", { value: "delivered" }, "Delivered"),
      el("option", { value: "dead" }, "Dead-lettered"));
    const refresh = el("button.secondary#webhooks-refresh", { type: "button" }, "Refresh");
    let chosen = null; // the subscription whose deliveries are shown
    let seq = 0; // ignores an answer overtaken by a later load

    async function loadSubs() {
      const r = await call("GET", BASE);
      if (r.status === 404 && r.body.code === "route_not_found") {
        return G.clear(subsBox, G.infoBox("Webhooks are not available on this server (the notify service runs elsewhere)."));
      }
      if (!r.ok) return G.clear(subsBox, G.problemBox(r.body, r.status, "Subscriptions could not be loaded"));
      const subs = r.body.subscriptions || [];
      if (!subs.length) {
        chosen = null;
        G.clear(delBox);
        return G.clear(subsBox, el("p.muted#webhook-subs-empty", "No webhook subscriptions. Create one with POST " + BASE + " (docs/events.md)."));
      }
      if (!subs.some((s) => s.id === chosen)) chosen = subs[0].id;
      G.clear(subsBox, el("div.table-wrap", el("table#webhook-subs-table",
        el("thead", el("tr", el("th", "URL"), el("th", "Event types"), el("th", "State"), el("th", "Created"), el("th", el("span.sr-only", "Actions")))),
        el("tbody", subs.map((s) => subRow(s))))));
    }

    function subRow(s) {
      const paused = s.state !== "active";
      const toggle = el("button.secondary", {
        type: "button", "data-toggle": s.id,
        "aria-label": (paused ? "Resume " : "Pause ") + s.url,
        onclick: (e) => G.busy(e.currentTarget, async () => {
          const p = await call("PATCH", BASE + "/" + encodeURIComponent(s.id), { state: paused ? "active" : "paused" });
          if (!p.ok) return G.clear(result, G.problemBox(p.body, p.status, "The subscription was not changed"));
          G.clear(result, G.okBox("Subscription ", el("code", s.id), " is now ", p.body.state, "."));
          await loadSubs();
        }),
      }, paused ? "Resume" : "Pause");
      const show = el("button", {
        type: "button", "data-show": s.id, "aria-pressed": String(s.id === chosen),
        "aria-label": "Show the deliveries to " + s.url,
        onclick: (e) => G.busy(e.currentTarget, async () => { chosen = s.id; await loadSubs(); await loadDeliveries(); }),
      }, "Deliveries");
      return el("tr", { "data-sub": s.id, "data-state": s.state, "aria-current": s.id === chosen ? "true" : null },
        el("td", el("code.sub-url", s.url), s.description ? el("div.small.muted", s.description) : null),
        el("td.sub-types", s.event_types.join(", ")),
        el("td", subStateTag(s),
          s.consecutive_failures ? el("div.small.muted", s.consecutive_failures + " failed attempts in a row") : null,
          s.disabled_reason ? el("div.small.muted", s.disabled_reason) : null),
        el("td.nowrap.sub-created", G.when(s.created_at)),
        el("td", el("div.row", show, toggle)));
    }

    function deliveryRow(sub, d) {
      return el("tr" + (failed(d) ? ".is-failed" : ""), {
        "data-delivery": d.id, "data-event": d.event_id, "data-state": d.state, "data-failed": String(failed(d)), "data-replay": String(d.replay),
      },
      el("td.nowrap", G.time(d.created_at), d.replay ? [" ", el("span.tag", "replay")] : null),
      el("td.d-type", d.event_type),
      el("td", el("code.d-event", d.event_id)),
      el("td.d-state", deliveryStateTag(d)),
      el("td.num.d-attempts", d.attempts),
      el("td.num.d-response", response(d)),
      el("td.num.d-latency", d.attempts ? G.ms(d.latency_ms) : "—"),
      el("td.small.d-error", d.last_error || ""),
      el("td", el("button.secondary", {
        type: "button", "data-replay-event": d.event_id, "aria-label": "Replay event " + d.event_id,
        onclick: (e) => G.busy(e.currentTarget, () => replay(sub, d.event_id)),
      }, "Replay")));
    }

    async function loadDeliveries() {
      const mine = ++seq;
      const sub = chosen;
      if (!sub) return;
      const f = filter.value;
      // "Failures only" takes pending deliveries that failed as well as dead
      // ones, so it filters here rather than by ?state=.
      const q = new URLSearchParams({ limit: f === "failed" ? "500" : "100" });
      if (f !== "all" && f !== "failed") q.set("state", f);
      const r = await call("GET", BASE + "/" + encodeURIComponent(sub) + "/deliveries?" + q.toString());
      if (mine !== seq) return;
      G.clear(heading, "Recent deliveries to ", el("code", sub));
      if (!r.ok) return G.clear(delBox, G.problemBox(r.body, r.status, "Deliveries could not be loaded"));
      let ds = r.body.deliveries || [];
      if (f === "failed") ds = ds.filter(failed);
      delBox.dataset.shown = f;
      if (!ds.length) return G.clear(delBox, el("p.muted#webhook-deliveries-empty", f === "all" ? "No deliveries yet." : "No deliveries of this kind."));
      G.clear(delBox, el("div.table-wrap", el("table#webhook-deliveries-table",
        el("thead", el("tr", el("th", "Created"), el("th", "Event type"), el("th", "Event id"), el("th", "State"),
          el("th.num", "Attempts"), el("th.num", "Response"), el("th.num", "Latency"), el("th", "Last error"), el("th", el("span.sr-only", "Actions")))),
        el("tbody", ds.map((d) => deliveryRow(sub, d))))));
    }

    // replay queues the event again and shows what the API answered, then
    // follows the new delivery for a little while (the delivery job runs
    // every second by default).
    async function replay(sub, eventID) {
      const r = await call("POST", BASE + "/" + encodeURIComponent(sub) + "/replay", { event_id: eventID });
      if (!r.ok) return G.clear(result, G.problemBox(r.body, r.status, "The event was not replayed"));
      const n = r.body.queued;
      G.clear(result, G.okBox(el("span#replay-queued", { "data-queued": n }, "Replay of ", el("code", eventID), ": ",
        n + (n === 1 ? " delivery" : " deliveries") + " queued.")));
      await loadDeliveries();
      for (let i = 0; i < 5 && chosen === sub; i++) {
        await new Promise((ok) => setTimeout(ok, 2000));
        if (!delBox.querySelector('tr[data-replay="true"][data-state="pending"]')) break;
        await loadDeliveries();
      }
    }

    filter.addEventListener("change", loadDeliveries);
    refresh.addEventListener("click", () => G.busy(refresh, async () => { await loadSubs(); await loadDeliveries(); }));
    (async () => { await loadSubs(); await loadDeliveries(); })();
    return el("div#webhooks",
      el("div.spread", el("p.small.muted", "Signed event deliveries to subscribed URLs (docs/events.md). A failed delivery is retried with backoff, then dead-lettered; replay sends its event again with the same id."),
        refresh),
      subsBox,
      el("div.spread", heading, G.field("Show", filter)),
      delBox,
      result);
  };
})();
