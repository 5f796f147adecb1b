// Draws a job's summary.json (patientgen/formats/summary.py) as key figures and SVG charts.
import { barChart, columnChart, formatNumber, tableOf } from "./charts.js";
import { NATIONS, label } from "./form.js";

const OUTCOME_NAMES = {
  KIA: "Killed in action", DOW: "Died of wounds", DIED: "Died of disease or non-battle injury",
  RTD: "Returned to duty", EVACUATED_R4: "Evacuated to Role 4",
};
const OUTCOME_COLORS = { KIA: 3, DOW: 1, DIED: 6, RTD: 2, EVACUATED_R4: 0 };
// The waits of summary.care_chain (patientgen/formats/summary.py), by kind.
const WAIT_NAMES = {
  evacuation: "Evacuation (a lift)", treatment: "Treatment (a team and a holding bed)",
  surgery: "Surgery (an operating table)", bed: "ICU bed",
};
const ROLE_NAMES = { R1: "Role 1", R2: "Role 2", R3: "Role 3", R4: "Role 4" };
const TRIAGE_NAMES = { T1: "T1 Immediate", T2: "T2 Delayed", T3: "T3 Minimal", T4: "T4 Expectant" };

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function minutesLabel(m) {
  if (m < 60) return `${m} min`;
  if (m < 1440) return `${Number((m / 60).toFixed(1))} h`;
  return `${Number((m / 1440).toFixed(1))} d`;
}

const pct = (x) => (x === null || x === undefined ? "–" : `${Number((x * 100).toFixed(1))}\u00a0%`);

function sortedEntries(counter) {
  return Object.entries(counter || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

function stats(summary) {
  const b = summary.battle_injury || {};
  const out = summary.by_outcome || {};
  const deaths = (out.KIA || 0) + (out.DOW || 0) + (out.DIED || 0);
  const p = summary.time_to_outcome_minutes?.percentiles?.all || {};
  // The definitions are the ones `patientgen generate` prints with its summary.
  const items = [
    ["Patients", formatNumber(summary.patients ?? 0)],
    ["Deaths", formatNumber(deaths)],
    ["Battle casualties", formatNumber(b.casualties ?? 0)],
    ["Case fatality (battle)", pct(b.cfr), "cfr",
      "CFR = (KIA + DOW) / (KIA + WIA): battle casualties who died, of all battle casualties."],
    ["Killed in action (%KIA)", pct(b.pct_kia), "pct-kia",
      "%KIA = KIA / (KIA + WIA − RTD): died before reaching care, of those not returned to duty."],
    ["Died of wounds (%DOW)", pct(b.pct_dow), "pct-dow",
      "%DOW = DOW / (WIA − RTD): died after reaching care, of the wounded not returned to duty."],
    ["In mass-casualty events", formatNumber(summary.mass_casualty_patients ?? 0)],
    ["Median injury to outcome", p.p50 === null || p.p50 === undefined ? "–" : minutesLabel(Math.round(p.p50))],
  ];
  const list = h("dl", { class: "stats" },
    items.map(([k, v, id, def]) => h("div", { class: "stat" }, h("dt", { text: k }),
      h("dd", {}, v, def ? h("span", { class: "stat-def", "data-def": id, text: def }) : null))));
  const legend = h("p", { class: "chart-note stats-legend",
    text: "KIA killed in action (before reaching care) · WIA wounded in action (reached care) · " +
      "DOW died of wounds · RTD returned to duty. Battle injuries only." });
  return [list, legend];
}

// The cross table of outcome by triage category (summaries written before it existed lack it).
function triageOutcome(summary) {
  const t = summary.outcome_by_triage;
  return t && typeof t === "object" ? t : null;
}

export function renderSummary(box, summary, scenario) {
  const width = Math.max(280, box.clientWidth || 600);
  const full = width;
  const half = width >= 760 ? (width - 24) / 2 : width;
  const charts = [];

  // Casualties per day
  const perDay = summary.casualties_per_day || [];
  const start = scenario?.start ? new Date(scenario.start) : null;
  charts.push(["wide", columnChart({
    title: "Casualties per day",
    description: `${formatNumber(perDay.reduce((a, b) => a + b, 0))} casualties over ${perDay.length} days`,
    labels: perDay.map((_, i) => String(i + 1)),
    series: [{ name: "Casualties", values: perDay, color: 0 }],
    width: full, xTitle: start ? `Day (day 1 = ${start.toISOString().slice(0, 10)})` : "Day",
  })]);

  // Outcomes by triage category
  const triages = ["T1", "T2", "T3", "T4"];
  const cross = triageOutcome(summary);
  const outcomes = Object.keys(OUTCOME_NAMES);
  const outcomeSeries = outcomes.map((o) => ({ name: OUTCOME_NAMES[o], color: OUTCOME_COLORS[o] }));
  if (cross) {
    const rows = Object.keys(cross).sort().map((t) => ({
      label: TRIAGE_NAMES[t] || t, values: outcomes.map((o) => cross[t]?.[o] || 0),
    }));
    // Each category as shares of itself: T3 is many times T1 or T2, which on one count scale
    // left them a few pixels wide.
    charts.push(["half", barChart({ title: "Outcomes by triage category", rows, series: outcomeSeries,
      width: half, normalise: true,
      note: "Each bar is one category, split by outcome (share of that category); the number is its patients." })]);
  } else {
    const byTriage = summary.by_triage || {};
    const keys = [...new Set([...triages.filter((t) => t in byTriage), ...Object.keys(byTriage).sort()])];
    charts.push(["half", barChart({
      title: "Triage categories",
      rows: keys.map((t) => ({ label: TRIAGE_NAMES[t] || label(t), values: [byTriage[t] || 0] })),
      series: [{ name: "Patients", color: 4 }], width: half,
    })]);
    const byOutcome = summary.by_outcome || {};
    const okeys = [...new Set([...outcomes.filter((o) => o in byOutcome), ...Object.keys(byOutcome)])];
    charts.push(["half", barChart({
      title: "Outcomes",
      rows: okeys.map((o) => ({ label: OUTCOME_NAMES[o] || label(o), values: [byOutcome[o] || 0] })),
      series: [{ name: "Patients", color: 5 }], width: half,
    })]);
  }

  // Category with deaths
  const byCat = summary.by_category || {};
  const deathsCat = summary.deaths_by_category || {};
  charts.push(["half", barChart({
    title: "Kinds of casualty",
    rows: sortedEntries(byCat).map(([k, v]) => ({
      label: label(k), values: [v - (deathsCat[k] || 0), deathsCat[k] || 0],
    })),
    series: [{ name: "Survived", color: 2 }, { name: "Died", color: 3 }], width: half,
  })]);

  // The chain of care: visits per role of care (Role 1 to Role 4), from the facilities' counts.
  const roles = {};
  for (const f of Object.values(summary.facilities || {})) {
    if (f && f.role) roles[f.role] = (roles[f.role] || 0) + (f.visits || 0);
  }
  const roleKeys = Object.keys(roles).sort();
  if (roleKeys.length) {
    charts.push(["half", barChart({
      title: "Load per role of care",
      note: "Patient visits at the facilities of each role (a patient moved on is counted at each role).",
      rows: roleKeys.map((r) => ({ label: ROLE_NAMES[r] || r, values: [roles[r]] })),
      series: [{ name: "Visits", color: 5 }], width: half,
    })]);
  }

  // Fronts and nations
  charts.push(["half", barChart({
    title: "Casualties by front",
    rows: sortedEntries(summary.by_front).map(([k, v]) => ({ label: k, values: [v] })),
    series: [{ name: "Casualties", color: 6 }], width: half,
  })]);
  charts.push(["half", barChart({
    title: "Casualties by nation",
    rows: sortedEntries(summary.by_nation).map(([k, v]) => ({ label: NATIONS[k] || k, values: [v] })),
    series: [{ name: "Casualties", color: 0 }], width: half,
  })]);

  // Time from injury to outcome
  const tto = summary.time_to_outcome_minutes || {};
  const bins = tto.bins || [];
  const hists = tto.histograms || {};
  const labels = bins.map((b) => `≤${minutesLabel(b)}`);
  labels.push(`>${minutesLabel(bins[bins.length - 1] ?? 0)}`);
  const present = Object.keys(hists);
  const order = [...outcomes.filter((o) => present.includes(o)), ...present.filter((o) => !outcomes.includes(o))];
  // Drop empty bins at both ends so the shape is visible.
  const totals = labels.map((_, i) => order.reduce((a, o) => a + (hists[o]?.[i] || 0), 0));
  let lo = totals.findIndex((v) => v > 0);
  let hi = totals.length - 1 - [...totals].reverse().findIndex((v) => v > 0);
  if (lo < 0) {
    lo = 0;
    hi = labels.length - 1;
  }
  charts.push(["wide", columnChart({
    title: "Time from injury to outcome",
    description: "Patients by time from injury to their outcome, stacked by outcome",
    labels: labels.slice(lo, hi + 1),
    series: order.map((o) => ({ name: OUTCOME_NAMES[o] || label(o), values: (hists[o] || []).slice(lo, hi + 1),
      color: OUTCOME_COLORS[o] })),
    width: full, xTitle: "Time from injury to outcome (bin upper edge)",
  })]);

  const chain = summary.care_chain ? careChain(summary.care_chain, scenario, full, half) : [];
  box.replaceChildren(...stats(summary), ...chain, ...charts.map(([size, fig]) => {
    fig.classList.add(size === "wide" ? "chart-wide" : "chart-half");
    return fig;
  }));
}

const minutes = (m) => (m === null || m === undefined ? "–" : minutesLabel(Math.round(m)));
const max = (values) => values.reduce((a, b) => (b > a ? b : a), 0);

function table(caption, headers, rows, attrs = {}) {
  const node = tableOf(headers, rows, { class: "chain-table", ...attrs });
  node.prepend(h("caption", { text: caption }));
  return node;
}

// A table that scrolls sideways on its own (keyboard too) rather than the page.
function scroll(tableNode) {
  const name = tableNode.querySelector("caption")?.textContent || "Table";
  return h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": `${name} (scrolls sideways)` },
    tableNode);
}

// The chain of care under the job's medical plan: who died of waiting, how long each need was
// waited for, what the facilities and lifts carried (summary.care_chain).
function careChain(chain, scenario, full, half) {
  const sim = chain.simulation || {};
  const precedence = sim.lift_precedence_met || {};
  const met = Object.values(precedence).reduce((a, p) => [a[0] + (p.requests || 0), a[1] + (p.within_window || 0)], [0, 0]);
  const items = [
    ["Deaths with a delay cause", `${formatNumber(chain.deaths_with_delay ?? 0)} of ${formatNumber(chain.deaths ?? 0)}`],
    ["Share of deaths with a delay cause", pct(chain.share_of_deaths_with_delay)],
    ["Died while waiting", formatNumber(chain.died_waiting ?? 0)],
    ["Lifts within their MEDEVAC window", met[0] ? pct(met[1] / met[0]) : "–"],
  ];
  const heading = h("h3", { class: "chain-title chain-wide", id: "care-chain-h", text: "Chain of care (medical plan)" });
  const list = h("dl", { class: "stats chain-stats chain-wide" },
    items.map(([k, v]) => h("div", { class: "stat" }, h("dt", { text: k }), h("dd", { text: v }))));
  const waits = chain.wait_percentiles_minutes || {};
  const waitTable = table("Waits for each need (a need met at once is a wait of 0)",
    ["Waited for", "p50", "p90"],
    Object.keys(WAIT_NAMES).filter((k) => k in waits).map((k) =>
      [WAIT_NAMES[k], minutes(waits[k].p50), minutes(waits[k].p90)]),
    { "data-role": "waits" });
  const names = { T1: "T1 Urgent (2 h)", T2: "T2 Priority (4 h)", T3: "T3 Routine (24 h)", T4: "T4 Routine (24 h)" };
  // past its window a request for a ground ambulance goes by a vehicle of the unit's own (CASEVAC)
  const liftTable = table("Lifts by MEDEVAC precedence (window from the request; past it, by the unit's own vehicle)",
    ["Triage", "Requests", "Within window", "By own vehicle"],
    Object.entries(precedence).map(([t, p]) =>
      [names[t] || t, formatNumber(p.requests || 0), p.requests ? pct(p.within_window / p.requests) : "–",
        formatNumber(p.by_vehicle_of_opportunity || 0)]),
    { "data-role": "precedence" });
  // The per-hour series comes from summary.json (GET /jobs/{id}/summary), after the rest: until
  // then the peaks are shown as pending.
  const hourly = sim.hourly || {};
  const units = Object.keys(sim.hourly || sim.operating_table_hours || {}).sort();
  const peak = (u, kind) => (sim.hourly ? formatNumber(max(hourly[u]?.[kind] || [])) : "…");
  const unitTable = table("Facilities: peak load and requirements",
    ["Unit", "Peak beds in use", "Peak queue", "Operating-table hours", "ICU bed-days"],
    units.map((u) => [u, peak(u, "occupancy"), peak(u, "queue"),
      String(sim.operating_table_hours?.[u] ?? 0), String(sim.icu_bed_days?.[u] ?? 0)]),
    { "data-role": "units", "data-series": sim.hourly ? "loaded" : "pending" });
  const unitBox = scroll(unitTable);
  unitBox.classList.add("chain-wide");
  const out = [heading, list,
    h("div", { class: "chain-tables chain-wide" }, scroll(waitTable), scroll(liftTable)), unitBox];
  // Casualties waiting at the facilities, hour by hour (all units together).
  const serial = Object.keys(hourly);
  const hours = max(serial.map((u) => (hourly[u].queue || []).length));
  if (hours) {
    const queue = Array.from({ length: hours }, (_, i) => serial.reduce((a, u) => a + (hourly[u].queue?.[i] || 0), 0));
    const start = scenario?.start ? new Date(scenario.start) : null;
    const fig = columnChart({
      title: "Casualties waiting at the facilities, hour by hour",
      description: `At most ${formatNumber(max(queue))} waiting at once for a team, a table or an ICU bed`,
      labels: queue.map((_, i) => String(i)),
      series: [{ name: "Waiting", values: queue, color: 1 }],
      width: full, xTitle: start ? `Hour (hour 0 = ${start.toISOString().slice(0, 16).replace("T", " ")} UTC)` : "Hour",
    });
    fig.classList.add("chart-wide");
    out.push(fig);
  }
  const lifts = sim.lifts_per_day || {};
  const kinds = Object.keys(lifts).sort();
  if (kinds.length) {
    const days = max(kinds.map((k) => lifts[k].length));
    const fig = columnChart({
      title: "Lifts per day",
      description: "Evacuation lifts flown or driven each day",
      labels: Array.from({ length: days }, (_, i) => String(i + 1)),
      series: kinds.map((k, i) => ({ name: label(k), values: lifts[k], color: i + 4 })),
      width: half, xTitle: "Day",
    });
    fig.classList.add(half === full ? "chart-wide" : "chart-half");
    out.push(fig);
  }
  return out;
}
