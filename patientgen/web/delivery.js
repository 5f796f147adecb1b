// Delivery jobs (a completed job's casualties pushed to a FHIR server or an MLLP listener): their
// name in lists, and their report in place of the charts.
import { el } from "./form.js";
import { formatNumber } from "./charts.js";

export function isDelivery(job) {
  return Boolean(job?.config?.delivery);
}

export function deliveryTarget(delivery) {
  if (delivery.target === "fhir") return `FHIR ${delivery.url}`;
  return `MLLP ${delivery.host}:${delivery.port}`;
}

export function deliveryName(job, sourceName) {
  const d = job.config.delivery;
  const what = d.pace ? `Replay (${d.pace.speed}× exercise time) of` : "Push of";
  return `${what} ${sourceName} to ${deliveryTarget(d)}`;
}

function said(outcome) {
  if (outcome && typeof outcome === "object") {
    const texts = (outcome.issue || []).map((i) => i?.details?.text || i?.diagnostics || "").filter(Boolean);
    return texts.join("; ") || "no details";
  }
  return String(outcome || "no details");
}

// The report: what was delivered, how fast, and every rejection listed (the first 200).
export function deliveryReport(job) {
  const r = job.summary || {};
  const unit = r.unit || "items";
  const d = job.config.delivery;
  const facts = [
    ["Target", deliveryTarget(d) + (d.mode === "batch" ? " (batch bundles)" : "")],
    ["Source job", d.source_job],
    [`Delivered ${unit}`, formatNumber(r.delivered ?? 0)],
    ["Rejected", formatNumber(r.rejected ?? 0)],
    ["Rate", `${formatNumber(Math.round(r.rate ?? 0))} ${unit}/s over ${(r.seconds ?? 0).toFixed(1)} s`],
    ["Retries", formatNumber(r.retries ?? 0)],
  ];
  const box = el("div", { class: "delivery-report" },
    el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })])));
  const rejections = r.rejections || [];
  if (rejections.length) {
    const shown = rejections.length < (r.rejected ?? 0) ? ` (the first ${rejections.length})` : "";
    box.append(el("table", { class: "data-table rejections" },
      el("caption", { text: `Rejected by the target${shown}` }),
      el("thead", {}, el("tr", {}, ...["What", "Status", "The target said"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...rejections.map((x) => el("tr", {},
        el("td", {}, el("code", { text: x.ref })), el("td", { text: x.status }), el("td", { text: said(x.outcome) }))))));
  }
  return box;
}
