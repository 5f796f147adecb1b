// The replay of the chain of care of a completed job: casualties (dots coloured by triage) moving
// through the columns POI, R1, R2, R3, R4 as exercise time runs, with play/pause, seek, speeds,
// the casualty browser's filters, counters per column and the facility load under it.
//
// It streams, never holding the whole job: a seek to T asks the API for the counters before T
// (GET /patients/counters?at=T) and the casualties active at T (tracks injured before T whose
// outcome is at or after T); play asks for the next casualties by time of injury ahead of the
// playhead (tracks injured at or after T, a page at a time). Invariant: every casualty injured
// before the playhead is loaded (the playhead waits for the next page otherwise), and the
// counters are the server's at the last seek plus the events of the loaded casualties between
// the seek and the playhead, so they equal the server's counters at every moment.
// A casualty is drawn in the column it last arrived at; it leaves the picture at its outcome.
// Drawing is one canvas (dots in a grid per column, a bounded number of moving dots).
import { api } from "./api.js";
import { el, NATIONS } from "./form.js";
import { formatNumber } from "./charts.js";

const ROLES = ["POI", "R1", "R2", "R3", "R4"];
const ROLE_NAMES = { POI: "Point of injury", R1: "Role 1", R2: "Role 2", R3: "Role 3", R4: "Role 4" };
const TRIAGE = [
  ["T1", "T1 Immediate", "#cc0000"], ["T2", "T2 Delayed", "#e6b800"], ["T3", "T3 Minimal", "#009933"],
  ["T4", "T4 Expectant", "#0052cc"], ["none", "Killed before triage", "#222222"],
];
const COLOUR = Object.fromEntries(TRIAGE.map(([k, , c]) => [k, c]));
const FILTERS = [["front", "Front"], ["nation", "Nation"], ["category", "Category"], ["triage", "Triage"], ["outcome", "Outcome"]];
const SPEEDS = [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100];
const HOUR = 3_600_000;
const PAGE = 2000;
const MAX_MOVERS = 300;
const MOVE_MS = 600; // wall time a dot takes to move to its new column
const TABLE_EVERY_MS = 250;
// Without motion the dots change columns at once (no dots in flight).
const REDUCED_MOTION = window.matchMedia("(prefers-reduced-motion: reduce)");

const timeFmt = new Intl.DateTimeFormat("en-GB", {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC",
});

// `hourly`: a promise of the care chain's per-hour series (null without a medical plan).
export function replayView(job, { announce = () => {}, describe = (e) => String(e),
  hourly: series = () => Promise.resolve(null) } = {}) {
  const base = `jobs/${encodeURIComponent(job.job_id)}/patients`;
  const scenario = job.config?.scenario || {};
  const startMs = scenario.start ? Date.parse(scenario.start) : null;
  const s = {
    filters: {}, span: null, t: 0, playing: false, speed: 1, seq: 0, busy: true,
    counters: null, live: [], ahead: [], aheadNext: null, aheadLoading: null, movers: [],
    lastWall: 0, lastTable: 0, raf: 0, hourly: undefined, hourlyError: null,
  };

  const live = el("p", { class: "visually-hidden", id: "replay-live", "aria-live": "polite" });
  const status = el("p", { class: "replay-status muted", id: "replay-status" });
  const play = el("button", { type: "button", class: "btn btn-primary", id: "replay-play", text: "Play",
    "aria-keyshortcuts": "k", onclick: () => toggle() });
  const seek = el("input", { type: "range", id: "replay-seek", min: 0, max: 1, step: 60000, value: 0,
    "aria-describedby": "replay-keys", oninput: () => seekTo(Number(seek.value)) });
  const clock = el("output", { id: "replay-time", for: "replay-seek", class: "replay-time" });
  const speed = el("select", { id: "replay-speed", "aria-describedby": "replay-rate",
    onchange: () => { s.speed = Number(speed.value); } },
  SPEEDS.map((v) => el("option", { value: v, text: `${v}×`, selected: v === 1 })));
  const filters = el("form", { class: "replay-filters", role: "search", "aria-label": "Filter the replay",
    onsubmit: (e) => e.preventDefault() });
  const canvas = el("canvas", { class: "replay-canvas", id: "replay-canvas", role: "img", tabindex: "0",
    "aria-label": "Casualties moving through the chain of care, coloured by triage; the table of counters below says the same in figures.",
    "aria-keyshortcuts": "k Space ArrowLeft ArrowRight Shift+ArrowLeft Shift+ArrowRight Home End + -" });
  const counterBody = el("tbody");
  const table = el("table", { class: "replay-counters", id: "replay-counters" },
    el("caption", { text: "Counters at the time shown: casualties there now, and arrivals, deaths and returns to duty so far" }),
    el("thead", {}, el("tr", {}, ["Place", "Now", "Arrivals", "Deaths", "RTD"].map((h) => el("th", { scope: "col", text: h })))),
    counterBody);
  const load = el("div", { class: "replay-load", id: "replay-load" });
  const legend = el("ul", { class: "replay-legend", "aria-label": "Colours" },
    TRIAGE.map(([, name, colour]) => el("li", {}, el("span", { class: "swatch", "data-colour": colour }), name)));
  const section = el("section", { class: "panel replay", id: "replay", "aria-labelledby": "replay-h", "aria-busy": "true" },
    el("h2", { id: "replay-h", tabindex: "-1", text: "Replay of the chain of care" }),
    el("p", { class: "hint", id: "replay-rate",
      text: "Speed 1× is one exercise hour per second (100× runs about four exercise days a second)." }),
    filters,
    el("div", { class: "replay-controls", onkeydown: keys },
      play,
      el("div", { class: "field replay-seek" }, el("label", { for: "replay-seek", text: "Exercise time" }), seek, clock),
      el("div", { class: "field" }, el("label", { for: "replay-speed", text: "Speed" }), speed)),
    el("p", { class: "hint", id: "replay-keys",
      text: "Keys on the picture and the controls: k play or pause, ← → one hour (with Shift one day), Home and End, + and − speed." }),
    status, legend, canvas, table, load, live);
  canvas.addEventListener("keydown", keys);
  for (const swatch of legend.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.colour;

  // ---------- data ----------

  function params(extra) {
    const q = new URLSearchParams(extra);
    for (const [field, value] of Object.entries(s.filters)) if (value) q.append(field, value);
    return q;
  }
  const iso = (ms) => new Date(ms).toISOString();

  async function fetchAhead(seq) {
    if (s.aheadNext === null || s.aheadLoading) return s.aheadLoading;
    const q = params({ injured_after: iso(s.aheadFrom), offset: s.aheadNext, limit: PAGE });
    s.aheadLoading = api(`${base}/tracks?${q}`).then(({ data }) => {
      if (seq !== s.seq) return;
      for (const track of data.items) s.ahead.push(track);
      if (data.items.length) s.loadedUntil = data.items[data.items.length - 1].times[0];
      s.aheadNext = data.next_offset;
    }).catch((err) => { if (seq === s.seq) fail(err); }).finally(() => {
      if (seq === s.seq) s.aheadLoading = null;
    });
    return s.aheadLoading;
  }

  // Everything injured before this time is loaded (tracks come in order of injury).
  function horizon() {
    return s.aheadNext === null ? Infinity : s.loadedUntil;
  }

  async function reset(t) {
    const seq = ++s.seq;
    s.busy = true;
    section.setAttribute("aria-busy", "true");
    status.textContent = "Loading…";
    try {
      const [{ data: counted }, active] = await Promise.all([
        api(`${base}/counters?${params({ at: iso(t) })}`),
        activeAt(t, seq),
      ]);
      if (seq !== s.seq) return;
      s.counters = counted.counters;
      s.total = counted.total;
      s.live = active;
      for (const track of s.live) track.col = column(track, t);
      s.ahead = [];
      s.aheadPos = 0;
      s.aheadFrom = t;
      s.loadedUntil = t;
      s.aheadNext = 0;
      s.aheadLoading = null;
      s.movers = [];
      s.t = t;
      await fetchAhead(seq);
      if (seq !== s.seq) return;
      s.busy = false;
      section.removeAttribute("aria-busy");
      draw(true);
      if (!s.playing) say();
      if (s.playing) loop();
    } catch (err) {
      if (seq === s.seq) fail(err);
    }
  }

  async function activeAt(t, seq) {
    const found = [];
    let offset = 0;
    while (offset !== null && seq === s.seq) {
      const q = params({ injured_before: iso(t), outcome_after: iso(t), offset, limit: 5000 });
      const { data } = await api(`${base}/tracks?${q}`);
      found.push(...data.items);
      offset = data.next_offset;
    }
    return found;
  }

  function fail(err) {
    s.playing = false;
    section.dataset.state = "paused";
    play.textContent = "Play";
    status.textContent = `The replay could not be loaded: ${describe(err)}`;
    section.removeAttribute("aria-busy");
  }

  // The column (0-4) the casualty last arrived at before t.
  function column(track, t) {
    let col = 0;
    for (let k = 1; k < 5; k++) if (track.times[k] !== null && track.times[k] < t) col = k;
    return col;
  }

  // Moves the playhead from s.t to t (forward): the events in [s.t, t) update the counters.
  function advance(t, wall) {
    const from = s.t;
    while (s.aheadPos < s.ahead.length && s.ahead[s.aheadPos].times[0] < t) {
      const track = s.ahead[s.aheadPos++];
      track.col = -1;
      s.live.push(track);
    }
    if (s.aheadPos > PAGE) { // drop what has gone live (no shift(): it copies the array)
      s.ahead = s.ahead.slice(s.aheadPos);
      s.aheadPos = 0;
    }
    const still = [];
    for (const track of s.live) {
      const times = track.times;
      for (let k = 0; k < 5; k++) {
        const at = times[k];
        if (at !== null && at >= from && at < t) s.counters[ROLES[k]].arrivals += 1;
      }
      const out = times[5];
      if (out < t) {
        if (out >= from) {
          const kind = track.outcome === "RTD" ? "rtd" : ["KIA", "DOW", "DIED"].includes(track.outcome) ? "deaths" : null;
          if (kind) s.counters[track.facility][kind] += 1;
        }
        continue;
      }
      const col = column(track, t);
      if (track.col !== col) {
        if (track.col >= 0 && s.movers.length < MAX_MOVERS && !REDUCED_MOTION.matches) s.movers.push({ from: track.col, to: col, triage: track.triage, wall });
        track.col = col;
      }
      still.push(track);
    }
    s.live = still;
    s.t = t;
  }

  // ---------- play ----------

  function toggle() {
    if (s.playing) pause();
    else start();
  }

  function start() {
    if (!s.span) return;
    if (s.t >= s.end) {
      seekTo(s.span.start);
    }
    s.playing = true;
    play.textContent = "Pause";
    section.dataset.state = "playing";
    s.lastWall = performance.now();
    loop();
  }

  function pause() {
    s.playing = false;
    play.textContent = "Play";
    section.dataset.state = "paused";
    cancelAnimationFrame(s.raf);
    s.movers = []; // a still picture has every casualty in its column
    draw(true);
    say();
  }

  function loop() {
    cancelAnimationFrame(s.raf);
    s.raf = requestAnimationFrame(frame);
  }

  function frame(wall) {
    if (!section.isConnected) { s.playing = false; return; }
    if (!s.playing) return;
    // never backwards: a frame's time may precede the performance.now() that start() took, and a
    // playhead moved back would count the events it passes again
    const elapsed = Math.max(0, Math.min(wall - s.lastWall, 250));
    s.lastWall = Math.max(s.lastWall, wall);
    if (!s.busy) {
      // whole milliseconds: the API's times are epoch milliseconds (floored)
      let target = Math.min(Math.floor(s.t + elapsed * s.speed * (HOUR / 1000)), s.end);
      const edge = horizon();
      if (target > edge) {
        target = Math.max(s.t, edge);
        status.textContent = "Loading the next casualties…";
      }
      advance(target, wall);
      // keep about 10 s of play loaded ahead
      if (edge - s.t < 10 * s.speed * HOUR && s.aheadNext !== null) fetchAhead(s.seq);
      draw(wall - s.lastTable > TABLE_EVERY_MS, wall);
      if (s.t >= s.end) {
        pause();
        return;
      }
    }
    s.raf = requestAnimationFrame(frame);
  }

  let seekTimer = 0;
  function seekTo(t) {
    t = Math.max(s.span.start, Math.min(s.end, t));
    seek.value = String(t);
    s.t = t;
    s.busy = true; // the loaded casualties and counters are those of another time until reset
    s.seq += 1; // and whatever is loading for the time before is dropped
    section.setAttribute("aria-busy", "true");
    showTime();
    clearTimeout(seekTimer);
    seekTimer = setTimeout(() => reset(t), 120);
  }

  function keys(e) {
    if (!s.span || e.ctrlKey || e.metaKey || e.altKey) return;
    const moves = e.target.tagName !== "SELECT"; // a menu keeps its own arrows
    const step = e.shiftKey ? 24 * HOUR : HOUR;
    let handled = true;
    if (e.key === "k" || (e.key === " " && e.target === canvas)) toggle();
    else if (e.key === "ArrowRight" && moves) seekTo(s.t + step);
    else if (e.key === "ArrowLeft" && moves) seekTo(s.t - step);
    else if (e.key === "Home" && moves) seekTo(s.span.start);
    else if (e.key === "End" && moves) seekTo(s.end);
    else if (e.key === "+" || e.key === "=" || e.key === "-") {
      const i = SPEEDS.indexOf(s.speed) + (e.key === "-" ? -1 : 1);
      s.speed = SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, i))];
      speed.value = String(s.speed);
      live.textContent = `Speed ${s.speed}×`;
    } else handled = false;
    if (handled && e.target.tagName !== "SELECT") e.preventDefault();
  }

  // ---------- drawing ----------

  function showTime() {
    if (!s.span) return;
    const day = startMs !== null ? Math.floor((s.t - startMs) / (24 * HOUR)) + 1 : null;
    clock.textContent = `${day !== null ? `Day ${day}, ` : ""}${timeFmt.format(new Date(s.t))} UTC`;
    section.dataset.at = String(Math.round(s.t));
    seek.setAttribute("aria-valuetext", clock.textContent);
  }

  function draw(withTable, wall = performance.now()) {
    if (!s.playing) seek.value = String(s.t);
    else if (withTable) seek.value = String(s.t);
    showTime();
    paint(wall);
    if (withTable) {
      s.lastTable = wall;
      renderTable();
      drawPlayhead();
      if (!s.playing && !s.busy) status.textContent = `${formatNumber(s.total)} casualties match; ${formatNumber(s.live.length)} in the chain now.`;
      else if (!s.busy) status.textContent = `Playing at ${s.speed}×; ${formatNumber(s.live.length)} casualties in the chain now.`;
    }
  }

  function here() {
    const counts = [0, 0, 0, 0, 0];
    for (const track of s.live) if (track.col >= 0) counts[track.col] += 1;
    return counts;
  }

  function renderTable() {
    if (!s.counters) return;
    const now = here();
    counterBody.replaceChildren(...ROLES.map((role, k) => el("tr", { "data-role": role },
      el("th", { scope: "row" }, role, el("span", { class: "role-name", text: ` ${ROLE_NAMES[role]}` })),
      el("td", { "data-kind": "here", text: formatNumber(now[k]) }),
      el("td", { "data-kind": "arrivals", text: formatNumber(s.counters[role].arrivals) }),
      el("td", { "data-kind": "deaths", text: formatNumber(s.counters[role].deaths) }),
      el("td", { "data-kind": "rtd", text: formatNumber(s.counters[role].rtd) }))));
  }

  function say() {
    if (!s.counters) return;
    const c = s.counters;
    const deaths = ROLES.reduce((n, r) => n + c[r].deaths, 0);
    const rtd = ROLES.reduce((n, r) => n + c[r].rtd, 0);
    live.textContent = `${clock.textContent}: ${formatNumber(c.POI.arrivals)} injured, `
      + `${ROLES.slice(1).map((r) => `${r} ${formatNumber(c[r].arrivals)}`).join(", ")} arrivals, `
      + `${formatNumber(deaths)} deaths, ${formatNumber(rtd)} returned to duty.`;
  }

  function paint(wall) {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(300, canvas.clientWidth || 300);
    const height = width < 600 ? 260 : 320;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.height = `${height}px`;
    }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const colW = width / 5;
    const top = 26;
    const gap = 6;
    // bucket the dots by column and triage (no per-dot sort)
    const buckets = ROLES.map(() => Object.fromEntries(TRIAGE.map(([k]) => [k, 0])));
    for (const track of s.live) if (track.col >= 0) buckets[track.col][track.triage] += 1;
    g.font = "600 13px system-ui, sans-serif";
    g.textAlign = "center";
    for (let k = 0; k < 5; k++) {
      const x0 = k * colW;
      g.fillStyle = k % 2 ? "#f3f5f8" : "#e9edf2";
      g.fillRect(x0 + 1, 0, colW - 2, height);
      g.fillStyle = "#1b2430";
      const n = Object.values(buckets[k]).reduce((a, b) => a + b, 0);
      g.fillText(`${ROLES[k]} · ${formatNumber(n)}`, x0 + colW / 2, 17);
      const innerW = colW - 2 * gap;
      const innerH = height - top - gap;
      let cell = 9;
      while (cell > 2 && Math.floor(innerW / cell) * Math.floor(innerH / cell) < n) cell -= 1;
      const perRow = Math.max(1, Math.floor(innerW / cell));
      const capacity = perRow * Math.floor(innerH / cell);
      let i = 0;
      for (const [tri] of TRIAGE) {
        g.fillStyle = COLOUR[tri];
        for (let j = 0; j < buckets[k][tri] && i < capacity; j++, i++) {
          g.fillRect(x0 + gap + (i % perRow) * cell, top + Math.floor(i / perRow) * cell, cell - 1, cell - 1);
        }
      }
      if (n > capacity) {
        g.fillStyle = "#1b2430";
        g.fillText(`+${formatNumber(n - capacity)} more`, x0 + colW / 2, height - 8);
      }
    }
    // the moving dots: from the middle of one column to the next, over MOVE_MS of wall time
    s.movers = s.movers.filter((m) => wall - m.wall < MOVE_MS);
    for (const m of s.movers) {
      const p = (wall - m.wall) / MOVE_MS;
      const x = (m.from + (m.to - m.from) * p + 0.5) * colW;
      g.fillStyle = COLOUR[m.triage];
      g.beginPath();
      g.arc(x, top + 8 + 10 * Math.sin(p * Math.PI), 4, 0, 2 * Math.PI);
      g.fill();
    }
  }

  // ---------- facility load (summary.care_chain) ----------

  let playhead = null;
  let loadSpan = null;
  function renderLoad() {
    const hourly = s.hourly;
    if (s.hourlyError || hourly === undefined) {
      load.replaceChildren(el("h3", { text: "Facility load" }),
        el("p", { class: "muted", id: s.hourlyError ? "replay-load-none" : "replay-load-wait",
          text: s.hourlyError ? `Could not read the facility load: ${describe(s.hourlyError)}` : "Reading the facility load…" }));
      playhead = null;
      return;
    }
    if (!hourly || startMs === null) {
      load.replaceChildren(el("h3", { text: "Facility load" }),
        el("p", { class: "muted", id: "replay-load-none",
          text: "Not available: facility occupancy and queues are simulated only for a job with a medical plan (scenario capacity). The counters above still show arrivals, deaths and returns to duty." }));
      playhead = null;
      return;
    }
    const front = s.filters.front;
    const sums = {};
    let hours = 0;
    for (const [uid, series] of Object.entries(hourly)) {
      const role = uid.split("-")[0];
      const unitFront = uid.slice(role.length + 1, uid.lastIndexOf("-"));
      if (front && unitFront !== front) continue;
      const into = sums[role] || (sums[role] = { occupancy: [], queue: [] });
      for (const kind of ["occupancy", "queue"]) {
        series[kind].forEach((v, h) => { into[kind][h] = (into[kind][h] || 0) + v; });
        hours = Math.max(hours, series[kind].length);
      }
    }
    const roles = Object.keys(sums).sort();
    const max = Math.max(1, ...roles.flatMap((r) => [...sums[r].occupancy, ...sums[r].queue]));
    const width = Math.max(300, load.clientWidth || section.clientWidth || 600);
    const height = 180;
    const pad = { l: 40, r: 8, t: 10, b: 22 };
    const svgNS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(svgNS, "svg");
    const attrs = (node, a) => { for (const [k, v] of Object.entries(a)) node.setAttribute(k, String(v)); return node; };
    attrs(svg, { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "replay-load-h" });
    const x = (h) => pad.l + (h / Math.max(1, hours - 1)) * (width - pad.l - pad.r);
    const y = (v) => height - pad.b - (v / max) * (height - pad.t - pad.b);
    svg.append(attrs(document.createElementNS(svgNS, "line"), { x1: pad.l, x2: width - pad.r, y1: y(0), y2: y(0), stroke: "#8a94a3" }));
    for (const v of [max / 2, max]) {
      const label = attrs(document.createElementNS(svgNS, "text"), { x: pad.l - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#4a5565" });
      label.textContent = formatNumber(Math.round(v));
      svg.append(label);
    }
    const days = Math.max(1, Math.ceil(hours / 24));
    for (const day of [0, Math.floor(days / 2), days - 1]) {
      const label = attrs(document.createElementNS(svgNS, "text"), { x: x(Math.min(hours - 1, day * 24)), y: height - 6,
        "text-anchor": day === 0 ? "start" : day === days - 1 ? "end" : "middle", "font-size": 11, fill: "#4a5565" });
      label.textContent = `Day ${day + 1}`;
      svg.append(label);
    }
    const colours = { R1: "#0052cc", R2: "#7a3db8", R3: "#b35900" };
    for (const role of roles) {
      for (const kind of ["occupancy", "queue"]) {
        const points = sums[role][kind].map((v, h) => `${x(h).toFixed(1)},${y(v || 0).toFixed(1)}`).join(" ");
        svg.append(attrs(document.createElementNS(svgNS, "polyline"), {
          points, fill: "none", stroke: colours[role] || "#333", "stroke-width": kind === "queue" ? 1.5 : 2,
          "stroke-dasharray": kind === "queue" ? "4 3" : "none", "data-series": `${role}-${kind}`,
        }));
      }
    }
    playhead = attrs(document.createElementNS(svgNS, "line"), { y1: pad.t, y2: height - pad.b, stroke: "#1b2430", "stroke-width": 1.5 });
    svg.append(playhead);
    loadSpan = { x, hours };
    const rows = roles.map((role) => {
      const occ = sums[role].occupancy;
      const queue = sums[role].queue;
      const peak = (a) => a.reduce((best, v, h) => ((v || 0) > a[best] ? h : best), 0);
      const at = (h) => `${timeFmt.format(new Date(startMs + h * HOUR))} UTC`;
      return el("tr", {}, el("th", { scope: "row", text: role }),
        el("td", { text: `${formatNumber(occ[peak(occ)] || 0)} (${at(peak(occ))})` }),
        el("td", { text: `${formatNumber(queue[peak(queue)] || 0)} (${at(peak(queue))})` }));
    });
    load.replaceChildren(
      el("h3", { id: "replay-load-h", text: `Facility load${front ? `, ${front} front` : ""}: beds in use (solid) and casualties waiting (dashed), per hour` }),
      el("ul", { class: "replay-legend" }, roles.map((role) => el("li", {},
        el("span", { class: "swatch", "data-colour": colours[role] || "#333" }), ROLE_NAMES[role] || role))),
      svg,
      el("p", { class: "hint", text: "From the care-chain simulation (summary.json), for every casualty of the front(s) whatever the other filters." }),
      el("details", { class: "chart-data" }, el("summary", { text: "Peaks as a table" }),
        el("table", {}, el("thead", {}, el("tr", {}, ["Role", "Most beds in use (when)", "Longest queue (when)"].map((h) => el("th", { scope: "col", text: h })))),
          el("tbody", {}, rows))));
    for (const swatch of load.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.colour;
    drawPlayhead();
  }

  function drawPlayhead() {
    if (!playhead || !loadSpan) return;
    const h = Math.max(0, Math.min(loadSpan.hours - 1, (s.t - startMs) / HOUR));
    const px = loadSpan.x(h).toFixed(1);
    playhead.setAttribute("x1", px);
    playhead.setAttribute("x2", px);
  }

  // ---------- filters ----------

  function renderFilters(facets) {
    filters.replaceChildren(...FILTERS.map(([field, title]) => {
      const id = `rf-${field}`;
      const select = el("select", { id, name: field, onchange: () => {
        s.filters[field] = select.value;
        if (field === "front") renderLoad();
        reset(s.t);
      } },
      el("option", { value: "", text: "any" }),
      (facets[field] || []).map((f) => el("option", { value: f.value,
        text: `${field === "nation" && NATIONS[f.value] ? `${f.value} (${NATIONS[f.value]})` : f.value} (${formatNumber(f.count)})` })));
      return el("div", { class: "field" }, el("label", { for: id, text: title }), select);
    }));
  }

  // Redrawn at the new width (the canvas and the chart are drawn at pixel size).
  let lastWidth = 0;
  const resized = new ResizeObserver(() => {
    const width = section.clientWidth;
    if (!section.isConnected) { resized.disconnect(); return; }
    if (width === lastWidth) return;
    lastWidth = width;
    paint(performance.now());
    if (s.span) renderLoad();
  });
  resized.observe(section);

  (async () => {
    try {
      // the per-hour series can be megabytes: the replay starts without waiting for it
      series().then((hourly) => { s.hourly = hourly; }, (err) => { s.hourlyError = err; })
        .then(() => { if (s.span) renderLoad(); });
      const [{ data: facets }, { data: first }] = await Promise.all([
        api(`${base}/facets`), api(`${base}/tracks?limit=1`)]);
      renderFilters(facets.facets);
      if (!first.span) {
        status.textContent = "This job has no casualties to replay.";
        section.removeAttribute("aria-busy");
        return;
      }
      s.span = first.span;
      s.end = first.span.end + 60_000; // after the last outcome: every event counted
      seek.min = String(s.span.start);
      seek.max = String(s.end);
      section.dataset.start = String(s.span.start);
      section.dataset.end = String(s.end);
      section.dataset.state = "paused";
      renderLoad();
      await reset(s.span.start);
    } catch (err) {
      fail(err);
    }
  })();
  return section;
}
