// The casualty browser of a completed job: a table paged from the API (never the whole file),
// filtered by front, nation, category, triage, outcome and last facility, sorted by its column
// headers, and a casualty card (a modal dialog) opened from a row or found by id.
// Everything comes from GET /jobs/{id}/patients[/facets|/{patient_id}]: the page holds one page.
import { api } from "./api.js";
import { el, label, NATIONS } from "./form.js";
import { formatNumber } from "./charts.js";

const PAGE_SIZE = 50;
const FILTERS = [
  ["front", "Front"], ["nation", "Nation"], ["category", "Category"], ["triage", "Triage"],
  ["outcome", "Outcome"], ["facility", "Last facility"],
];
const OUTCOMES = {
  KIA: "Killed in action", DOW: "Died of wounds", DIED: "Died", RTD: "Returned to duty",
  EVACUATED_R4: "Evacuated to Role 4",
};
const CATEGORIES = { battle_injury: "Battle injury", non_battle_injury: "Non-battle injury", disease: "Disease" };
// Columns: [title, sort key or null, cell text of a record]
const COLUMNS = [
  ["#", "index", (r) => String(r.index)],
  ["Name", null, null], // a button opening the card
  ["Front", "front", (r) => r.front],
  ["Nation", "nation", (r) => r.nationality],
  ["Category", "category", (r) => CATEGORIES[r.category] || r.category],
  ["Triage", "triage", (r) => r.triage || "none"],
  ["Injured", "injured_at", (r) => fmtTime(r.injured_at)],
  ["Outcome", "outcome", (r) => r.outcome],
  ["Last facility", "facility", (r) => r.outcome_facility],
  ["Outcome at", "outcome_at", (r) => fmtTime(r.outcome_at)],
];

const timeFmt = new Intl.DateTimeFormat("en-GB", {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC",
});
function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : `${timeFmt.format(d)} UTC`;
}
function fmtMinutes(minutes) {
  if (minutes === null || minutes === undefined || !Number.isFinite(minutes)) return "–";
  const m = Math.round(minutes);
  if (m < 90) return `${m} min`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h} h ${m % 60} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}
const minutesBetween = (a, b) => (a && b ? (new Date(b) - new Date(a)) / 60000 : null);
const personName = (r) => `${r.family_name}, ${r.given_name}`;
const valueText = (field, value) => {
  if (field === "nation") return NATIONS[value] ? `${value} (${NATIONS[value]})` : value;
  if (field === "category") return CATEGORIES[value] || label(value);
  if (field === "outcome") return OUTCOMES[value] ? `${value}: ${OUTCOMES[value]}` : value;
  if (field === "triage" && value === "none") return "none (killed before triage)";
  return value;
};

function query(state) {
  const q = new URLSearchParams({ offset: state.offset, limit: PAGE_SIZE, sort: state.sort });
  for (const [field, value] of Object.entries(state.filters)) if (value) q.append(field, value);
  return q;
}

// The browser's section; `announce` speaks counts to screen-reader users.
export function casualtyBrowser(job, { announce = () => {}, describe = (e) => String(e) } = {}) {
  const base = `jobs/${encodeURIComponent(job.job_id)}/patients`;
  const state = { filters: {}, sort: "index", offset: 0, total: 0, items: [], seq: 0 };
  const status = el("p", { class: "casualty-status", id: "casualty-status", role: "status" });
  const filters = el("form", { class: "casualty-filters", role: "search", "aria-label": "Filter casualties",
    onsubmit: (e) => e.preventDefault() });
  const head = el("tr");
  const body = el("tbody");
  const table = el("table", { class: "casualty-table", "aria-describedby": "casualty-status" },
    el("caption", { class: "visually-hidden", text: "Casualties of this job; sortable column headers are buttons" }),
    el("thead", {}, head), body);
  const prev = el("button", { type: "button", class: "btn", text: "← Previous", "data-role": "prev",
    onclick: () => go(Math.max(0, state.offset - PAGE_SIZE)) });
  const next = el("button", { type: "button", class: "btn", text: "Next →", "data-role": "next",
    onclick: () => go(state.offset + PAGE_SIZE) });
  const dialog = el("dialog", { class: "casualty-card", "aria-labelledby": "card-title" });
  const findInput = el("input", { id: "casualty-find", type: "text", spellcheck: "false", autocomplete: "off",
    placeholder: "e.g. 0b5f3c2e-8d1a-4c7e-9f60-2a4b6c8d0e1f", "aria-describedby": "casualty-find-error" });
  const findError = el("p", { class: "field-error", id: "casualty-find-error", hidden: true });
  const find = el("form", { class: "casualty-find", onsubmit: (e) => { e.preventDefault(); findById(); } },
    el("div", { class: "field" }, el("label", { for: "casualty-find", text: "Find a casualty by id" }),
      el("div", { class: "find-row" }, findInput, el("button", { type: "submit", class: "btn", text: "Open" }))),
    findError);
  const section = el("section", { class: "panel casualties", id: "casualties", "aria-labelledby": "casualties-h" },
    el("h2", { id: "casualties-h", tabindex: "-1", text: "Casualties" }),
    filters, status,
    el("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Casualty table (scrolls sideways)" }, table),
    el("div", { class: "pager" }, prev, next), find, dialog);

  // On a phone some columns are hidden (app.css): every sort stays reachable from this menu.
  const sortSelect = el("select", { id: "casualty-sort", onchange: () => {
    state.sort = sortSelect.value;
    go(0);
  } }, COLUMNS.filter(([, key]) => key).flatMap(([title, key]) => [
    el("option", { value: key, text: key === "index" ? "File order" : `${title} ↑` }),
    el("option", { value: `-${key}`, text: key === "index" ? "File order, reversed" : `${title} ↓` })]));
  const sortField = el("div", { class: "field narrow-only" },
    el("label", { for: "casualty-sort", text: "Sort by" }), sortSelect);

  function renderHead() {
    sortSelect.value = state.sort;
    head.replaceChildren(...COLUMNS.map(([title, key]) => {
      if (!key) return el("th", { scope: "col", "data-col": title, text: title });
      const current = state.sort.replace(/^-/, "") === key;
      const descending = current && state.sort.startsWith("-");
      const th = el("th", { scope: "col", "data-col": title,
        "aria-sort": current ? (descending ? "descending" : "ascending") : "none" },
        el("button", { type: "button", class: "sort", "data-sort": key,
          text: `${title}${current ? (descending ? " ▼" : " ▲") : ""}`,
          onclick: () => {
            state.sort = current && !descending ? `-${key}` : key;
            go(0, `button[data-sort="${key}"]`);
          } }));
      return th;
    }));
  }

  function renderRows() {
    body.replaceChildren(...state.items.map((r) => el("tr", { "data-index": r.index, "data-id": r.id },
      COLUMNS.map(([title, , cell]) => (cell
        ? el("td", { "data-col": title, text: cell(r) })
        : el("td", { "data-col": title }, el("button", { type: "button", class: "linkish open-card",
          text: personName(r), "aria-haspopup": "dialog",
          onclick: (e) => openCard(r, e.currentTarget) })))))));
    if (!state.items.length) {
      body.append(el("tr", {}, el("td", { colspan: COLUMNS.length, class: "muted", text: "No casualty matches these filters." })));
    }
    const first = state.total ? state.offset + 1 : 0;
    const last = state.offset + state.items.length;
    status.textContent = state.total
      ? `${formatNumber(first)}–${formatNumber(last)} of ${formatNumber(state.total)} casualties`
      : "No casualties match.";
    status.dataset.total = String(state.total);
    prev.disabled = state.offset === 0;
    next.disabled = last >= state.total;
  }

  async function go(offset, refocus) {
    state.offset = offset;
    const seq = ++state.seq;
    section.setAttribute("aria-busy", "true");
    try {
      const { data: page } = await api(`${base}?${query(state)}`);
      if (seq !== state.seq) return; // a newer request won
      state.total = page.total;
      state.items = page.items;
      renderHead();
      renderRows();
      announce(status.textContent);
      if (refocus) section.querySelector(refocus)?.focus();
    } catch (err) {
      if (seq === state.seq) status.textContent = `The casualties could not be loaded: ${describe(err)}`;
    } finally {
      if (seq === state.seq) section.removeAttribute("aria-busy");
    }
  }

  function renderFilters(facets) {
    filters.replaceChildren(...FILTERS.map(([field, title]) => {
      const id = `cf-${field}`;
      const select = el("select", { id, name: field, onchange: () => {
        state.filters[field] = select.value;
        go(0);
      } },
      el("option", { value: "", text: "any" }),
      (facets[field] || []).map((f) => el("option", { value: f.value,
        text: `${valueText(field, f.value)} (${formatNumber(f.count)})` })));
      return el("div", { class: "field" }, el("label", { for: id, text: title }), select);
    }), sortField, el("button", { type: "button", class: "btn btn-quiet", text: "Clear filters", onclick: () => {
      state.filters = {};
      for (const s of filters.querySelectorAll("select")) s.value = "";
      go(0);
    } }));
  }

  async function findById() {
    const id = findInput.value.trim();
    findError.hidden = true;
    findInput.removeAttribute("aria-invalid");
    try {
      const { data: record } = await api(`${base}/${encodeURIComponent(id)}`);
      openCard(record, findInput);
    } catch (err) {
      findError.textContent = err.status === 404 || err.status === 422
        ? `No casualty of this job has the id “${id}”.`
        : `The casualty could not be loaded: ${describe(err)}`;
      findError.hidden = false;
      findInput.setAttribute("aria-invalid", "true");
      findInput.focus();
    }
  }

  function openCard(record, opener) {
    dialog.replaceChildren(...casualtyCard(record, () => dialog.close()));
    dialog.onclose = () => opener?.isConnected && opener.focus();
    dialog.showModal();
    dialog.querySelector("#card-title")?.focus();
  }

  (async () => {
    renderHead();
    status.textContent = "Loading the casualties…";
    try {
      const { data: answer } = await api(`${base}/facets`);
      renderFilters(answer.facets);
      await go(0);
    } catch (err) {
      status.textContent = err.status === 409
        ? (err.problem?.detail || "This job's casualties cannot be browsed.")
        : `The casualties could not be loaded: ${describe(err)}`;
      filters.hidden = true;
      table.closest(".table-scroll").hidden = true;
      prev.parentElement.hidden = true;
      find.hidden = true;
    }
  })();
  return section;
}

// ---------- the card ----------

function vitalsTable(record) {
  // every set in time order: on arrival, then (a plan's casualty who died waiting) found failing
  const rows = record.visits.flatMap((v) => [
    ...(v.vitals ? [{ facility: v.facility, vitals: v.vitals }] : []),
    ...(v.deterioration ? [{ facility: `${v.facility} (failing)`, vitals: v.deterioration }] : []),
  ]);
  if (!rows.length) return el("p", { class: "muted", text: "No vital signs were taken." });
  const cols = [
    ["Taken", (v) => fmtTime(v.vitals.taken_at)], ["Where", (v) => v.facility],
    ["Heart rate", (v) => `${v.vitals.heart_rate}/min`], ["Resp. rate", (v) => `${v.vitals.respiratory_rate}/min`],
    ["Blood pressure", (v) => `${v.vitals.systolic_bp}/${v.vitals.diastolic_bp} mmHg`],
    ["SpO₂", (v) => `${v.vitals.spo2} %`], ["Temp.", (v) => `${v.vitals.temperature_c} °C`],
    ["GCS", (v) => String(v.vitals.gcs)], ["AVPU", (v) => v.vitals.avpu], ["Pain", (v) => `${v.vitals.pain}/10`],
  ];
  return el("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": "Vital signs over time" },
    el("table", { class: "card-table vitals" },
      el("thead", {}, el("tr", {}, cols.map(([t]) => el("th", { scope: "col", text: t })))),
      el("tbody", {}, rows.map((v) => el("tr", {}, cols.map(([, f], i) =>
        (i === 0 ? el("th", { scope: "row", text: f(v) }) : el("td", { text: f(v) }))))))));
}

function visitsList(record) {
  if (!record.visits.length) return el("p", { class: "muted", text: "Killed at the point of injury: no facility was reached." });
  return el("ol", { class: "visits" }, record.visits.map((v) => {
    const firstCare = v.procedures.length
      ? v.procedures.map((p) => p.performed_at).sort()[0] : null;
    return el("li", { class: "visit", "data-facility": v.facility },
      el("h4", { text: `${v.facility} · ${v.facility_id}` }),
      el("dl", { class: "kv kv-compact" },
        el("dt", { text: "Arrived" }), el("dd", { text: fmtTime(v.arrived_at) }),
        el("dt", { text: "Transit" }), el("dd", { text: fmtMinutes(v.transit_minutes) }),
        el("dt", { text: "Wait for care" }), el("dd", { text: firstCare ? fmtMinutes(minutesBetween(v.arrived_at, firstCare)) : "–" }),
        el("dt", { text: "Stay" }), el("dd", { text: v.departed_at ? fmtMinutes(minutesBetween(v.arrived_at, v.departed_at)) : "until the end of the record" }),
        el("dt", { text: "Triage" }), el("dd", { text: v.triage || "–" }),
        el("dt", { text: "Then" }), el("dd", { text: label(v.disposition) })),
      v.procedures.length ? el("ul", { class: "procedures" }, v.procedures.map((p) =>
        el("li", { text: `${fmtTime(p.performed_at)}: ${p.display}` }))) : null);
  }));
}

function casualtyCard(r, close) {
  const injuries = el("ul", { class: "injuries" }, r.conditions.map((c) =>
    el("li", {}, el("strong", { text: c.display }), ` (${c.severity}${c.body_site ? `, ${c.body_site}` : ""})`)));
  const timeline = el("ol", { class: "timeline" }, r.timeline.map((e) =>
    el("li", {}, el("time", { datetime: e.at, text: fmtTime(e.at) }),
      ` ${label(e.kind)} at ${e.facility}${e.detail ? `: ${e.detail}` : ""}`)));
  return [
    el("div", { class: "card-head" },
      el("h3", { id: "card-title", tabindex: "-1", text: personName(r) }),
      el("button", { type: "button", class: "btn", text: "Close", "data-role": "close-card", onclick: close })),
    el("p", { class: "muted card-id", text: `Casualty #${r.index} · ${r.id}` }),
    el("section", { "aria-labelledby": "card-who" }, el("h4", { id: "card-who", text: "Who" }),
      el("dl", { class: "kv kv-compact" },
        [["Service number", r.service_number], ["Gender", r.gender], ["Born", r.birth_date],
          ["Blood group", r.blood_group], ["Nation", NATIONS[r.nationality] ? `${NATIONS[r.nationality]} (${r.nationality})` : r.nationality],
          ["Front", r.front], ["Category", CATEGORIES[r.category] || r.category],
          ["Cause", [label(r.warfare), r.mechanism].filter(Boolean).join(", ")],
          ["Injured", fmtTime(r.injured_at)], ["Mass casualty", r.mass_casualty ? `yes (${r.event_id})` : "no"],
          ["First triage", r.triage || "none"],
          ["Outcome", `${OUTCOMES[r.outcome] || r.outcome} at ${r.outcome_facility}, ${fmtTime(r.outcome_at)}`]]
          .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v ?? "–") })]))),
    el("section", { "aria-labelledby": "card-injuries" }, el("h4", { id: "card-injuries", text: "Injuries and illness" }), injuries),
    el("section", { "aria-labelledby": "card-vitals" }, el("h4", { id: "card-vitals", text: "Vital signs over time" }), vitalsTable(r)),
    el("section", { "aria-labelledby": "card-visits" }, el("h4", { id: "card-visits", text: "Chain of care" }), visitsList(r)),
    el("section", { "aria-labelledby": "card-timeline" }, el("h4", { id: "card-timeline", text: "Timeline" }), timeline),
  ];
}
