// The scenario form: filling it from a scenario, reading a scenario back, live sums, and showing
// the problems of a 422 next to the fields they concern.

export const NATIONS = {
  ALB: "Albania", BEL: "Belgium", BGR: "Bulgaria", CAN: "Canada", HRV: "Croatia",
  CZE: "Czechia", DNK: "Denmark", EST: "Estonia", FIN: "Finland", FRA: "France",
  DEU: "Germany", GRC: "Greece", HUN: "Hungary", ITA: "Italy",
  LVA: "Latvia", LTU: "Lithuania", LUX: "Luxembourg", MNE: "Montenegro", NLD: "Netherlands",
  MKD: "North Macedonia", NOR: "Norway", POL: "Poland", PRT: "Portugal", ROU: "Romania",
  SVK: "Slovakia", SVN: "Slovenia", ESP: "Spain", SWE: "Sweden", TUR: "Türkiye",
  GBR: "United Kingdom", USA: "United States",
};
export const WARFARE = [
  "conventional", "artillery", "urban", "guerrilla", "drone", "naval", "cbrn", "peacekeeping",
];
export const INJURY = ["disease", "non_battle_injury", "battle_injury"];
export const FORMATS = ["json", "ndjson", "csv", "fhir", "fhir-bundle", "hl7", "mel", "cards"];
// Unchecked until asked for: the exercise package (cards are refused above 20,000 patients).
const ON_REQUEST = ["mel", "cards"];
const LABELS = {
  cbrn: "CBRN", non_battle_injury: "Non-battle injury", battle_injury: "Battle injury",
  json: "JSON", ndjson: "NDJSON", csv: "CSV", fhir: "FHIR R4 (NDJSON)",
  "fhir-bundle": "FHIR R4 transaction bundles", hl7: "HL7 v2 ADT messages",
  mel: "Exercise inject list (MEL, CSV)", cards: "Casualty cards (PDF, up to 20,000)",
};
export function label(key) {
  if (LABELS[key]) return LABELS[key];
  const s = String(key).replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// Help shown under the fields; the figures are the generator's (patientgen/generator/plan.py,
// timing.py and injuries.py).
export const HELP = {
  intensity: {
    low: "Lethality: about 11 % of battle casualties die (unless set under Advanced). Not how many casualties.",
    medium: "Lethality: about 13 % of battle casualties die (unless set under Advanced). Not how many casualties.",
    high: "Lethality: about 16 % of battle casualties die (unless set under Advanced). Not how many casualties.",
    extreme: "Lethality: about 19 % of battle casualties die (unless set under Advanced). Not how many casualties.",
  },
  tempo: {
    sustained: "Over the days: the same number every day.",
    escalating: "Over the days: few at first, rising steadily to about six times as many on the last day.",
    surge: "Over the days: a build-up to a sharp peak about a third of the way in, then a long tail.",
    declining: "Over the days: many at first, falling steadily to a fraction by the last day.",
    intermittent: "Over the days: two busy days in every six, quiet days in between.",
  },
  capacity: {
    unlimited: "Every facility and lift has room for everyone: nobody waits for care.",
    sized: "Doctrinal units per front (Role 1 to Role 3, ambulances, helicopters) sized from " +
      "published planning figures for this scenario's load: casualties wait for teams, " +
      "tables, beds and lifts, and waiting can kill. See docs/care-chain.md.",
    custom: "The medical plan of the copied scenario, unit by unit, as it was run. It names " +
      "the fronts: after renaming, adding or removing a front, choose the sized plan.",
  },
};
export const WARFARE_HELP = {
  conventional: "Combined-arms fighting: mostly blast and fragments, about a quarter gunshot wounds.",
  artillery: "Shelling and rockets: almost all blast and fragment wounds.",
  urban: "Fighting in towns: more gunshot wounds, and crush injuries from collapsing buildings.",
  guerrilla: "Roadside bombs (IEDs) and ambushes: mostly blast, about a quarter gunshot.",
  drone: "Drone strikes and loitering munitions: almost all blast and fragment wounds.",
  naval: "At sea: blast, and many burns and blunt injuries from shipboard fires.",
  cbrn: "Chemical, biological, radiological or nuclear: burns stand for chemical and thermal injury.",
  peacekeeping: "Patrols and incidents: more gunshot wounds, fewer from blast.",
};

const TOLERANCE = 1e-6;
let uid = 0;
export const nextId = (prefix) => `${prefix}-${++uid}`;

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Fractions are shown as percentages; 12 significant digits avoid 0.30000000000000004.
const toPercent = (f) => (f === null || f === undefined ? "" : String(Number((f * 100).toPrecision(12))));
const toFraction = (p) => Number((p / 100).toPrecision(12));
const fmtSum = (x) => `${Number(x.toFixed(4))} %`;

function numberOrNull(input) {
  const raw = input.value.trim();
  if (raw === "") return null;
  const n = Number(raw);
  return Number.isFinite(n) ? n : raw;
}
function percentOrZero(input) {
  const raw = input.value.trim();
  if (raw === "") return 0;
  const n = Number(raw);
  return Number.isFinite(n) ? toFraction(n) : raw;
}

export class ScenarioForm {
  constructor(form, { onChange } = {}) {
    this.form = form;
    this.onChange = onChange || (() => {});
    this.base = {};
    this.$ = (sel) => form.querySelector(sel);
    this.buildMix("warfare", WARFARE, this.$("#warfare-fields"));
    const helpList = this.$("#warfare-help-list");
    if (helpList) {
      for (const key of WARFARE) {
        helpList.append(el("dt", { text: label(key) }), el("dd", { text: WARFARE_HELP[key] }));
      }
    }
    this.buildMix("injury_mix", INJURY, this.$("#injury-fields"));
    const formats = this.$("#formats-fields");
    for (const f of FORMATS) {
      const id = `format-${f}`;
      formats.append(
        el("div", { class: "check" },
          el("input", { type: "checkbox", id, name: "formats", value: f, checked: !ON_REQUEST.includes(f) }),
          el("label", { for: id, text: label(f) })),
      );
    }
    this.$("#add-front").addEventListener("click", () => {
      const row = this.addFront({ name: "", share: 0, nationalities: { POL: 1 } });
      this.renumber();
      this.update();
      row.querySelector("input").focus();
    });
    form.addEventListener("input", () => this.update());
    form.addEventListener("change", () => this.update());
  }

  buildMix(group, keys, container) {
    for (const key of keys) {
      const id = `f-${group}-${key}`;
      container.append(
        el("div", { class: "field mix-field", dataset: { loc: `${group}.${key}` } },
          el("label", { for: id, text: label(key) }),
          el("div", { class: "with-unit" },
            el("input", {
              id, type: "number", min: "0", max: "100", step: "any", inputmode: "decimal",
              "data-mix": group, "data-key": key,
            }),
            el("span", { class: "unit", "aria-hidden": "true", text: "%" }))),
      );
    }
  }

  addFront(front) {
    const list = this.$("#fronts-list");
    const nameId = nextId("front-name");
    const shareId = nextId("front-share");
    const nationsList = el("ul", { class: "nations" });
    const row = el("li", { class: "front" },
      el("fieldset", { class: "front-box" },
        el("legend", { class: "front-legend" }),
        el("div", { class: "front-fields" },
          el("div", { class: "field front-name", "data-role": "name" },
            el("label", { for: nameId, text: "Front name" }),
            el("input", { id: nameId, type: "text", maxlength: "80", value: front.name ?? "",
              "data-front": "name" })),
          el("div", { class: "field front-share", "data-role": "share" },
            el("label", { for: shareId, text: "Share" }),
            el("div", { class: "with-unit" },
              el("input", { id: shareId, type: "number", min: "0", max: "100", step: "any",
                inputmode: "decimal", value: toPercent(front.share), "data-front": "share" }),
              el("span", { class: "unit", "aria-hidden": "true", text: "%" })))),
        el("div", { class: "nations-box", "data-role": "nationalities" },
          el("p", { class: "nations-title", text: "Nations fighting here" }),
          nationsList,
          el("div", { class: "row-actions" },
            el("button", { type: "button", class: "btn btn-small", "data-action": "add-nation",
              text: "Add nation" }),
            el("button", { type: "button", class: "btn btn-small btn-danger",
              "data-action": "remove-front", text: "Remove front" })),
          el("p", { class: "sum", "data-role": "nations-sum", "aria-live": "polite" }),
          el("p", { class: "field-error", "data-role": "nations-error", hidden: true })),
        el("p", { class: "field-error", "data-role": "front-error", hidden: true })),
    );
    for (const [code, share] of Object.entries(front.nationalities || {})) {
      this.addNation(row, code, share);
    }
    row.querySelector('[data-action="add-nation"]').addEventListener("click", () => {
      const used = new Set(this.nationRows(row).map((r) => r.querySelector("select").value));
      const free = Object.keys(NATIONS).find((c) => !used.has(c)) || "USA";
      const nrow = this.addNation(row, free, 0);
      this.renumber();
      this.update();
      nrow.querySelector("select").focus();
    });
    row.querySelector('[data-action="remove-front"]').addEventListener("click", () => {
      const rows = [...list.children];
      const i = rows.indexOf(row);
      row.remove();
      this.renumber();
      this.update();
      const next = list.children[Math.min(i, list.children.length - 1)];
      (next ? next.querySelector("input") : this.$("#add-front")).focus();
    });
    list.append(row);
    return row;
  }

  addNation(row, code, share) {
    const selId = nextId("nation");
    const shareId = nextId("nation-share");
    const select = el("select", { id: selId, "data-nation": "code" });
    for (const [c, name] of Object.entries(NATIONS)) {
      select.append(el("option", { value: c, text: `${name} (${c})`, selected: c === code }));
    }
    if (!(code in NATIONS)) {
      select.append(el("option", { value: code, text: code, selected: true }));
    }
    const nrow = el("li", { class: "nation" },
      el("div", { class: "field nation-code" },
        el("label", { for: selId, text: "Nation" }), select),
      el("div", { class: "field nation-share" },
        el("label", { for: shareId, text: "Share" }),
        el("div", { class: "with-unit" },
          el("input", { id: shareId, type: "number", min: "0", max: "100", step: "any",
            inputmode: "decimal", value: toPercent(share), "data-nation": "share" }),
          el("span", { class: "unit", "aria-hidden": "true", text: "%" }))),
      el("button", { type: "button", class: "btn btn-small btn-icon", "data-action": "remove-nation",
        text: "Remove" }),
      el("p", { class: "field-error nation-error", hidden: true }),
    );
    nrow.querySelector('[data-action="remove-nation"]').addEventListener("click", () => {
      const rows = this.nationRows(row);
      const i = rows.indexOf(nrow);
      nrow.remove();
      this.renumber();
      this.update();
      const rest = this.nationRows(row);
      const next = rest[Math.min(i, rest.length - 1)];
      (next ? next.querySelector("select") : row.querySelector('[data-action="add-nation"]')).focus();
    });
    row.querySelector(".nations").append(nrow);
    return nrow;
  }

  frontRows() {
    return [...this.$("#fronts-list").children];
  }
  nationRows(row) {
    return [...row.querySelector(".nations").children];
  }

  // Keeps data-loc paths, legends and accessible names in step with the row order.
  renumber() {
    this.frontRows().forEach((row, i) => {
      const name = row.querySelector('[data-front="name"]').value.trim();
      row.querySelector(".front-legend").textContent = `Front ${i + 1}${name ? `: ${name}` : ""}`;
      row.dataset.loc = `fronts.${i}`;
      row.querySelector('[data-role="name"]').dataset.loc = `fronts.${i}.name`;
      row.querySelector('[data-role="share"]').dataset.loc = `fronts.${i}.share`;
      row.querySelector('[data-role="nationalities"]').dataset.loc = `fronts.${i}.nationalities`;
      row.querySelector('[data-front="name"]').setAttribute("aria-label", `Front name (front ${i + 1})`);
      row.querySelector('[data-front="share"]').setAttribute("aria-label", `Share of front ${i + 1} (%)`);
      row.querySelector('[data-action="remove-front"]').setAttribute(
        "aria-label", `Remove front ${i + 1}`);
      row.querySelector('[data-action="add-nation"]').setAttribute(
        "aria-label", `Add nation to front ${i + 1}`);
      this.nationRows(row).forEach((nrow, j) => {
        const code = nrow.querySelector("select").value;
        nrow.dataset.loc = `fronts.${i}.nationalities.${code}`;
        nrow.querySelector("select").setAttribute("aria-label", `Nation ${j + 1} of front ${i + 1}`);
        nrow.querySelector('[data-nation="share"]').setAttribute(
          "aria-label", `Share of nation ${j + 1} of front ${i + 1} (%)`);
        nrow.querySelector('[data-action="remove-nation"]').setAttribute(
          "aria-label", `Remove nation ${j + 1} (${code}) of front ${i + 1}`);
      });
    });
  }

  fill(scenario, formats) {
    const s = scenario || {};
    this.base = structuredClone(s);
    const set = (sel, v) => {
      this.$(sel).value = v === undefined || v === null ? "" : String(v);
    };
    set("#f-name", s.name ?? "scenario");
    set("#f-patients", s.total_patients ?? 1000);
    set("#f-seed", s.seed ?? "");
    set("#f-start", toLocalInput(s.start ?? "2026-03-02T06:00:00Z"));
    set("#f-days", s.duration_days ?? 30);
    set("#f-intensity", s.intensity ?? "medium");
    set("#f-tempo", s.tempo ?? "sustained");
    const warfare = s.warfare || { conventional: 0.45, artillery: 0.3, drone: 0.15, urban: 0.1 };
    for (const k of WARFARE) set(`#f-warfare-${k}`, toPercent(warfare[k] ?? 0));
    const injury = s.injury_mix || { disease: 0.52, non_battle_injury: 0.33, battle_injury: 0.15 };
    for (const k of INJURY) set(`#f-injury_mix-${k}`, toPercent(injury[k] ?? 0));
    this.$("#fronts-list").replaceChildren();
    const fronts = s.fronts || [
      { name: "East", share: 0.6, nationalities: { POL: 0.4, USA: 0.35, DEU: 0.25 } },
      { name: "North", share: 0.4, nationalities: { EST: 0.3, GBR: 0.4, FIN: 0.3 } },
    ];
    for (const f of fronts) this.addFront(f);
    const mc = s.mass_casualty || {};
    set("#f-mc-rate", mc.rate_per_day ?? 0.1);
    set("#f-mc-min", mc.min_size ?? 8);
    set("#f-mc-max", mc.max_size ?? 40);
    const cal = s.calibration || {};
    set("#f-female", toPercent(cal.female_share));  // empty: each nation's published share
    set("#f-cfr", cal.battle_cfr === null || cal.battle_cfr === undefined ? "" : toPercent(cal.battle_cfr));
    this.$("#f-translit").checked = Boolean(s.transliterate_names);
    // "sized" is replaced by its plan when a job is submitted: a copied job holds the plan itself
    const plan = s.capacity !== null && typeof s.capacity === "object";
    const custom = this.$('#f-capacity option[value="custom"]');
    custom.hidden = custom.disabled = !plan;
    set("#f-capacity", plan ? "custom" : s.capacity ?? "unlimited");
    if (formats) {
      for (const box of this.form.querySelectorAll('input[name="formats"]')) {
        box.checked = formats.includes(box.value);
      }
    }
    this.renumber();
    this.clearErrors();
    this.update();
  }

  // The scenario as the form describes it, on top of the preset's (or job's) other fields.
  read() {
    const s = structuredClone(this.base || {});
    delete s.seed;
    s.name = this.$("#f-name").value;
    s.total_patients = numberOrNull(this.$("#f-patients"));
    const seed = this.$("#f-seed").value.trim();
    if (seed !== "") s.seed = /^\d+$/.test(seed) ? { __bigint: seed.replace(/^0+(?=\d)/, "") } : seed;
    const start = this.$("#f-start").value;
    s.start = start ? `${start.length === 16 ? `${start}:00` : start}Z` : null;
    s.duration_days = numberOrNull(this.$("#f-days"));
    s.intensity = this.$("#f-intensity").value;
    s.tempo = this.$("#f-tempo").value;
    s.warfare = {};
    for (const k of WARFARE) s.warfare[k] = percentOrZero(this.$(`#f-warfare-${k}`));
    s.injury_mix = {};
    for (const k of INJURY) s.injury_mix[k] = percentOrZero(this.$(`#f-injury_mix-${k}`));
    s.fronts = this.frontRows().map((row) => {
      const nationalities = {};
      for (const nrow of this.nationRows(row)) {
        nationalities[nrow.querySelector("select").value] = percentOrZero(
          nrow.querySelector('[data-nation="share"]'));
      }
      return {
        name: row.querySelector('[data-front="name"]').value,
        share: percentOrZero(row.querySelector('[data-front="share"]')),
        nationalities,
      };
    });
    s.mass_casualty = {
      ...(s.mass_casualty || {}),
      rate_per_day: numberOrNull(this.$("#f-mc-rate")) ?? 0.1,
      min_size: numberOrNull(this.$("#f-mc-min")) ?? 8,
      max_size: numberOrNull(this.$("#f-mc-max")) ?? 40,
    };
    const cal = { ...(s.calibration || {}) };
    if (this.$("#f-female").value.trim() === "") delete cal.female_share;  // per nation
    else cal.female_share = percentOrZero(this.$("#f-female"));
    const cfr = this.$("#f-cfr").value.trim();
    if (cfr === "") delete cal.battle_cfr;
    else cal.battle_cfr = percentOrZero(this.$("#f-cfr"));
    s.calibration = cal;
    s.transliterate_names = this.$("#f-translit").checked;
    const capacity = this.$("#f-capacity").value;
    if (capacity === "unlimited") delete s.capacity;  // the default, left out as the API does
    else if (capacity === "sized") s.capacity = "sized";
    // "custom": the copied plan, kept as it is in the base scenario
    return s;
  }

  formats() {
    return [...this.form.querySelectorAll('input[name="formats"]:checked')].map((b) => b.value);
  }

  // Live sums; returns the problems the server cannot see (duplicate nations in one front).
  update() {
    this.renumber();
    for (const hint of this.form.querySelectorAll("[data-help]")) {
      const key = hint.dataset.help;
      hint.textContent = HELP[key]?.[this.$(`#f-${key}`).value] || "";
    }
    const sumOf = (inputs) => inputs.reduce((acc, i) => acc + (Number(i.value) || 0), 0);
    const mark = (sumEl, group, total, what) => {
      const ok = Math.abs(total - 100) <= TOLERANCE * 100;
      sumEl.textContent = ok ? `Sum: ${fmtSum(total)}` : `Sum: ${fmtSum(total)}, must be 100 % (${what})`;
      sumEl.classList.toggle("bad", !ok);
      sumEl.classList.toggle("ok", ok);
      group.classList.toggle("sum-invalid", !ok);
      return ok;
    };
    mark(this.$("#warfare-sum"), this.$("#warfare-group"),
      sumOf([...this.form.querySelectorAll('[data-mix="warfare"]')]), "kind of fighting");
    mark(this.$("#injury-sum"), this.$("#injury-group"),
      sumOf([...this.form.querySelectorAll('[data-mix="injury_mix"]')]), "injury mix");
    const rows = this.frontRows();
    mark(this.$("#fronts-sum"), this.$("#fronts-group"),
      sumOf(rows.map((r) => r.querySelector('[data-front="share"]'))), "front shares");
    const local = [];
    rows.forEach((row, i) => {
      const nrows = this.nationRows(row);
      mark(row.querySelector('[data-role="nations-sum"]'), row.querySelector(".nations-box"),
        sumOf(nrows.map((n) => n.querySelector('[data-nation="share"]'))), `nations of front ${i + 1}`);
      const seen = new Map();
      for (const nrow of nrows) {
        const code = nrow.querySelector("select").value;
        const err = nrow.querySelector(".nation-error");
        if (seen.has(code)) {
          const msg = `${NATIONS[code] || code} is listed twice in this front.`;
          local.push({ loc: [`fronts`, i, "nationalities", code], message: msg, row: nrow });
          err.textContent = msg;
          err.hidden = false;
          err.dataset.local = "1";
          nrow.classList.add("invalid");
        } else if (err.dataset.local) {
          err.hidden = true;
          err.textContent = "";
          delete err.dataset.local;
          nrow.classList.remove("invalid");
        }
        seen.set(code, true);
      }
    });
    this.onChange();
    return local;
  }

  clearErrors() {
    for (const e of this.form.querySelectorAll(".field-error")) {
      if (e.dataset.local) continue;
      e.hidden = true;
      e.textContent = "";
    }
    for (const e of this.form.querySelectorAll('[aria-invalid="true"]')) {
      e.removeAttribute("aria-invalid");
    }
    for (const e of this.form.querySelectorAll(".has-error")) e.classList.remove("has-error");
    const box = this.$("#form-errors");
    box.hidden = true;
    box.replaceChildren();
  }

  // Puts each problem of a 422 next to its field; returns the problems that fit no field.
  showErrors(errors, detail) {
    this.clearErrors();
    const listed = [];
    const orphans = [];
    const all = (errors || []).map((err) => {
      const path = normaliseLoc(err.loc ?? err.field ?? err.pointer ?? []);
      const raw = String(err.message || err.msg || err.detail || "invalid").replace(/^Value error, /, "");
      return { path, message: humanMessage(raw, path), type: err.type };
    });
    // When a front is invalid pydantic also says the tuple of fronts is too short ("not 0"),
    // which only confuses: drop that echo when the real problem is listed.
    const frontProblem = all.some((e) => e.path[0] === "fronts" && e.path.length > 1);
    for (const { path, message, type } of all) {
      if (frontProblem && path.length === 1 && path[0] === "fronts" && type === "too_short") continue;
      const target = this.findTarget(path);
      if (!target) {
        orphans.push({ path, message });
        listed.push({ path, message, target: null });
        continue;
      }
      const fold = target.closest("details");
      if (fold) fold.open = true; // an error inside "Advanced" must not stay hidden
      const slot = errorSlot(target);
      const text = slot.textContent ? `${slot.textContent} ${message}` : message;
      slot.textContent = text;
      slot.hidden = false;
      target.classList.add("has-error");
      const control = target.matches("input, select")
        ? target
        : target.querySelector(":scope > input, :scope > select, :scope > .with-unit > input");
      if (control) {
        control.setAttribute("aria-invalid", "true");
        if (!slot.id) slot.id = nextId("err");
        const ids = new Set((control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean));
        ids.add(slot.id);
        control.setAttribute("aria-describedby", [...ids].join(" "));
      }
      listed.push({ path, message, target, control });
    }
    const box = this.$("#form-errors");
    const n = listed.length;
    box.append(el("p", { class: "form-errors-title",
      text: n ? `${n} problem${n === 1 ? "" : "s"} to fix:` : detail || "Invalid scenario." }));
    const ul = el("ul");
    for (const item of listed) {
      const where = item.target ? this.describe(item.target, item.path) : placeName(item.path) || "Scenario";
      const li = el("li");
      const focusable = item.control || item.target?.querySelector("input, select, button");
      if (focusable) {
        if (!focusable.id) focusable.id = nextId("ctl");
        li.append(el("a", { href: `#${focusable.id}`, text: where, onclick: (e) => {
          e.preventDefault();
          focusable.focus();
        } }), `: ${item.message}`);
      } else {
        li.append(`${where}: ${item.message}`);
      }
      ul.append(li);
    }
    if (n) box.append(ul);
    box.hidden = false;
    return orphans;
  }

  // A human name for the place of a problem: "Patients", "Front 1: nations", ...
  describe(target, path) {
    const front = target.closest(".front");
    const prefix = front ? `Front ${Number(front.dataset.loc.split(".")[1]) + 1}, ` : "";
    if (target.matches(".nations-box")) return `${prefix}nations`;
    if (target.matches(".nation")) return `${prefix}${target.querySelector("select").value}`;
    if (target.matches(".front")) return prefix.replace(/, $/, "");
    const own = target.matches("fieldset")
      ? target.querySelector(":scope > legend")
      : target.querySelector(":scope > label");
    if (own) return `${prefix}${own.firstChild?.textContent?.trim() || own.textContent.trim()}`;
    return placeName(path) || path.join(".");
  }

  // The element for a loc path: the longest prefix that names something in the form.
  findTarget(path) {
    for (let end = path.length; end > 0; end--) {
      const key = path.slice(0, end).join(".");
      const hit = this.form.querySelector(`[data-loc="${CSS.escape(key)}"]`);
      if (hit) return hit;
      const slot = this.form.querySelector(`[data-loc-error="${CSS.escape(key)}"]`);
      if (slot) return slot;
    }
    return null;
  }
}

// The API speaks in fractions and field names ("injury_mix must sum to 1, got 1.05",
// "fronts[].share"); the form speaks in percent and labels. These name what the API names.
const PLACE_NAMES = {
  "fronts[].share": "the front shares",
  "fronts[].nationalities": "the nations' shares",
  fronts: "fronts",
  nationalities: "the nations' shares",
  warfare: "the kinds of fighting",
  injury_mix: "the injury mix",
  triage_mix: "the triage mix",
  "mass_casualty.min_size": "Smallest event",
  "mass_casualty.max_size": "Largest event",
  min_size: "Smallest event",
  max_size: "Largest event",
  rate_per_day: "Mass-casualty events per day",
  mass_casualty: "Mass-casualty events",
  total_patients: "Patients",
  duration_days: "Days",
  female_share: "Women",
  battle_cfr: "Battle case fatality",
  calibration: "Advanced",
  transliterate_names: "Latin script for names",
  capacity: "Chain of care",
};
const PERCENT_FIELDS = new Set(["warfare", "injury_mix", "share", "nationalities", "female_share",
  "battle_cfr", "triage_mix"]);

const percentText = (x) => `${Number((Number(x) * 100).toPrecision(6))} %`;

export function placeName(path) {
  const parts = path.map(String);
  const key = parts.join(".");
  if (PLACE_NAMES[key]) return PLACE_NAMES[key];
  const last = parts.filter((p) => !/^\d+$/.test(p)).pop();
  if (!last) return "";
  return PLACE_NAMES[last] || label(last);
}

export function humanMessage(message, path) {
  let text = message;
  // "<what> must sum to 1, got 1.05" -> "<what> must add up to 100 %, now 105 %"
  text = text.replace(/^(\S+) must sum to 1, got ([-+\d.e]+)$/, (_, what, got) =>
    `${PLACE_NAMES[what] || label(what)} must add up to 100 %, now ${percentText(got)}`);
  // Bounds of a fraction are shown as percentages where the field is one.
  if (path.some((p) => PERCENT_FIELDS.has(String(p)))) {
    text = text.replace(/\b(less than or equal to|greater than or equal to|less than|greater than) ([-+\d.e]+)/g,
      (_, rel, n) => `${rel} ${percentText(n)}`);
  }
  // Any other internal name (snake_case, dotted, or with []) becomes the form's label.
  text = text.replace(/\b[a-z]+(?:_[a-z]+)*(?:\[\])?(?:\.[a-z]+(?:_[a-z]+)*)+|\b[a-z]+(?:_[a-z]+)+\b/g,
    (name) => PLACE_NAMES[name] || PLACE_NAMES[name.split(".").pop()] || name.replace(/[_.]|\[\]/g, " "));
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function errorSlot(target) {
  if (target.classList.contains("field-error")) return target;
  if (target.matches(".front")) return target.querySelector('[data-role="front-error"]');
  if (target.matches(".nations-box")) return target.querySelector('[data-role="nations-error"]');
  if (target.matches(".nation")) return target.querySelector(".nation-error");
  const own = target.querySelector(":scope > .field-error");
  if (own) return own;
  const slot = el("p", { class: "field-error", hidden: true });
  target.append(slot);
  return slot;
}

// ["body", "scenario", "fronts", 0, "share"] or "scenario.fronts[0].share" -> ["fronts", "0", "share"]
export function normaliseLoc(loc) {
  let parts = Array.isArray(loc)
    ? loc.map(String)
    : String(loc).replace(/^\//, "").split(/[./]|\[|\]/).filter((p) => p !== "");
  if (parts[0] === "body") parts = parts.slice(1);
  if (parts[0] === "scenario" || parts[0] === "overrides") parts = parts.slice(1);
  return parts;
}

// "2026-03-02T06:00:00Z" -> "2026-03-02T06:00" (the input shows UTC).
export function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toISOString().slice(0, 16);
}
