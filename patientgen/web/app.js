// patientgen web page: scenario form, live jobs list, job view. Uses only the public HTTP API.
import {
  api, apiUrl, ApiError, downloadWithKey, getKey, newIdempotencyKey, parseJSON, readEvents, setKey,
  setUnauthorizedHandler, stringifyJSON,
} from "./api.js";
import { ScenarioForm, el, label, NATIONS } from "./form.js";
import { formatNumber } from "./charts.js";
import { renderSummary } from "./summary.js";
import { casualtyBrowser } from "./casualties.js";
import { replayView } from "./replay.js";
import { SavedScenarios } from "./saved.js";
import { deliveryName, deliveryReport, isDelivery } from "./delivery.js";
import { pushSection } from "./push.js";

const ACTIVE = new Set(["pending", "running"]);
const MAX_STREAMS = 4;
const DRAFT_STORAGE = "patientgen.draft";
// Below this width the form and the jobs list are shown one at a time (see .home-switch).
const NARROW = window.matchMedia("(max-width: 999px)");
const state = {
  jobs: new Map(), // job_id -> job JSON
  order: [], // job ids, newest first
  nextCursor: null,
  presets: [],
  streams: new Map(), // job_id -> AbortController
  streamFailures: new Map(),
  rows: new Map(), // job_id -> <li>
  viewJobId: null,
  pollTimer: null,
  morePages: false,
  formTouched: false,
  presetValue: "", // the preset the form was last filled from
};
const $ = (sel) => document.querySelector(sel);
let form;
let saved;

// ---------- notices and auth ----------

function notice(message, kind = "error") {
  const box = $("#notice");
  if (!message) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.className = `notice notice-${kind}`;
  box.replaceChildren(el("span", { text: message }),
    el("button", { type: "button", class: "btn btn-quiet btn-small", text: "Dismiss",
      onclick: () => notice(null) }));
  box.hidden = false;
}

function describe(err) {
  if (err instanceof ApiError) {
    const p = err.problem || {};
    return p.detail || p.title || err.message;
  }
  return String(err?.message || err);
}

function showKeyForm(needed) {
  const f = $("#key-form");
  f.hidden = false;
  document.body.classList.toggle("key-needed", Boolean(needed));
}

setUnauthorizedHandler((err) => {
  showKeyForm(true);
  const had = Boolean(getKey());
  notice(had ? `The API key was refused: ${describe(err)}` : "This service needs an API key. Enter it at the top of the page.");
  if (!had) $("#api-key").focus();
});

function initKeyForm() {
  const f = $("#key-form");
  if (getKey()) {
    showKeyForm(false);
    $("#api-key").value = getKey();
  }
  f.addEventListener("submit", (e) => {
    e.preventDefault();
    setKey($("#api-key").value.trim());
    document.body.classList.remove("key-needed");
    notice(null);
    reloadAll();
  });
  $("#key-forget").addEventListener("click", () => {
    setKey("");
    $("#api-key").value = "";
    for (const c of state.streams.values()) c.abort();
    reloadAll();
  });
}

// Status changes are announced once to screen readers (the list itself is not a live region).
function announce(text) {
  const live = $("#live");
  live.textContent = "";
  setTimeout(() => {
    live.textContent = text;
  }, 50);
}

// ---------- formatting ----------

const dateFmt = new Intl.DateTimeFormat("en-GB", {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  second: "2-digit", timeZone: "UTC", timeZoneName: "short",
});
function fmtDate(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateFmt.format(d);
}
function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 90) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 90) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${i ? v.toFixed(v < 10 ? 2 : 1) : v} ${units[i]}`;
}
const pct = (f) => `${Number((f * 100).toPrecision(6))}\u00a0%`;

const scenarioOf = (job) => job?.config?.scenario || {};
const formatsOf = (job) => job?.config?.formats || [];
const scenarioName = (job) => scenarioOf(job).name || `Job ${String(job.job_id).slice(0, 8)}`;
const jobName = (job) => (isDelivery(job) ? deliveryName(job, scenarioName(job)) : scenarioName(job));

function progressText(job) {
  const d = job.progress_details || {};
  const parts = [`${job.progress ?? 0}\u00a0%`];
  if (d.patients_total) {
    const what = d.counted === "items" ? (d.unit || "items") : "patients";  // a replay counts items
    parts.push(`${formatNumber(d.patients_done ?? 0)} of ${formatNumber(d.patients_total)} ${what}`);
  }
  if (job.status === "running") {
    if (d.rate) parts.push(`${formatNumber(Math.round(d.rate))} ${d.unit || "patients"}/s`);
    if (d.eta_seconds !== null && d.eta_seconds !== undefined && d.eta_seconds > 0) {
      parts.push(`about ${fmtDuration(d.eta_seconds)} left`);
    }
    if (d.phase) parts.push(String(d.phase));
  }
  return parts.join(" · ");
}

// What the user may do now comes from the job layer's rules, carried by every job document.
function actionsFor(job) {
  return Array.isArray(job.allowed_actions) ? job.allowed_actions : [];
}

function progressBar(job, name) {
  const value = Math.max(0, Math.min(100, Number(job.progress) || 0));
  const bar = el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0",
    "aria-valuemax": "100", "aria-valuenow": String(value), "aria-label": `Progress of ${name}`,
    "aria-valuetext": progressText(job) },
  el("div", { class: "progress-fill" }));
  bar.firstElementChild.style.width = `${value}%`; // CSSOM, so a strict CSP allows it
  bar.dataset.status = job.status;
  return bar;
}

function updateProgressBar(bar, job) {
  const value = Math.max(0, Math.min(100, Number(job.progress) || 0));
  bar.setAttribute("aria-valuenow", String(value));
  bar.setAttribute("aria-valuetext", progressText(job));
  bar.dataset.status = job.status;
  bar.firstElementChild.style.width = `${value}%`;
}

function statusBadge(job) {
  const text = job.status === "running" && job.cancel_requested_at ? "cancelling" : job.status;
  return el("span", { class: `badge status-${job.status}`, "data-role": "status", text });
}

// ---------- jobs list ----------

function archiveUrl(job) {
  return apiUrl(`jobs/${encodeURIComponent(job.job_id)}/archive`);
}

function useAsNewScenario(job) {
  const s = scenarioOf(job);
  $("#preset").value = "";
  state.presetValue = "";
  $("#preset-description").textContent = `Copied from job ${job.job_id}.`;
  form.fill(s, formatsOf(job));
  state.formTouched = true;
  saveDraft();
  showPanel("form");
  location.hash = "#/";
  setTimeout(() => $("#f-name").focus(), 0);
}

function actionButtons(job, where) {
  const name = jobName(job);
  const box = el("div", { class: "job-actions" });
  // A completed job's first action is its files, then its scenario again; delete comes last.
  if (job.status === "completed") {
    const zip = downloadLink(archiveUrl(job), `patientgen-${job.job_id}.zip`, "Download ZIP",
      `Download all files of ${name} as one ZIP archive`);
    zip.className = "btn btn-small btn-primary";
    zip.dataset.action = "download";
    box.append(zip, el("button", { type: "button", class: "btn btn-small", "data-action": "reuse",
      "aria-label": `Use ${name} as a new scenario`, text: "Use as a new scenario",
      onclick: () => useAsNewScenario(job) }));
  }
  for (const action of actionsFor(job)) {
    box.append(el("button", {
      type: "button", class: `btn btn-small${action === "delete" ? " btn-danger btn-quiet-danger" : ""}`,
      "data-action": action, "aria-label": `${label(action)} ${name}`, text: label(action),
      onclick: (e) => jobAction(job.job_id, action, e.currentTarget, where),
    }));
  }
  return box;
}

function renderRow(job) {
  const name = jobName(job);
  const s = scenarioOf(job);
  const li = el("li", { class: "job", "data-job-id": job.job_id, "data-status": job.status },
    el("div", { class: "job-head" },
      el("a", { class: "job-name", href: `#/jobs/${job.job_id}`, text: name }),
      statusBadge(job)),
    el("p", { class: "job-meta" },
      `${formatNumber(s.total_patients ?? 0)} patients · ${formatsOf(job).join(", ") || "–"} · ${fmtDate(job.created_at)}`),
    progressBar(job, name),
    el("p", { class: "job-progress-text", "data-role": "progress-text", text: progressText(job) }),
    job.error ? el("p", { class: "job-error", text: job.error }) : null,
    actionButtons(job, "list"));
  return li;
}

function updateRow(job) {
  const old = state.rows.get(job.job_id);
  if (!old) return;
  if (old.dataset.status !== job.status || Boolean(old.querySelector(".job-error")) !== Boolean(job.error) ||
      old.dataset.cancelling !== String(Boolean(job.cancel_requested_at))) {
    const focusedAction = old.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    const fresh = renderRow(job);
    fresh.dataset.cancelling = String(Boolean(job.cancel_requested_at));
    old.replaceWith(fresh);
    state.rows.set(job.job_id, fresh);
    applyFilter();
    if (focusedAction) {
      (fresh.querySelector(`[data-action="${focusedAction}"]`) || fresh.querySelector(".job-name")).focus();
    }
    return;
  }
  updateProgressBar(old.querySelector(".progress"), job);
  old.querySelector('[data-role="progress-text"]').textContent = progressText(job);
}

function renderList() {
  const list = $("#jobs-list");
  const wanted = state.order.filter((id) => state.jobs.has(id));
  for (const [id, row] of state.rows) {
    if (!wanted.includes(id)) {
      row.remove();
      state.rows.delete(id);
    }
  }
  let prev = null;
  for (const id of wanted) {
    let row = state.rows.get(id);
    if (!row) {
      row = renderRow(state.jobs.get(id));
      row.dataset.cancelling = String(Boolean(state.jobs.get(id).cancel_requested_at));
      state.rows.set(id, row);
    }
    const expected = prev ? prev.nextElementSibling : list.firstElementChild;
    if (expected !== row) {
      if (prev) prev.after(row);
      else list.prepend(row);
    }
    prev = row;
  }
  $("#jobs-empty").hidden = wanted.length > 0;
  $("#more-jobs").hidden = !state.nextCursor;
  applyFilter();
}

// The name and status filter, over the jobs loaded so far ("Load older jobs" adds more).
function applyFilter() {
  const words = $("#jobs-search").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const status = $("#jobs-status").value;
  let shown = 0;
  for (const [id, row] of state.rows) {
    const job = state.jobs.get(id);
    const name = job ? jobName(job).toLowerCase() : "";
    const ok = Boolean(job) && (!status || job.status === status) && words.every((w) => name.includes(w));
    row.hidden = !ok;
    if (ok) shown += 1;
  }
  const total = state.rows.size;
  const note = $("#jobs-filtered");
  const filtering = words.length > 0 || Boolean(status);
  note.hidden = !filtering;
  note.textContent = filtering
    ? `${shown} of ${total} loaded job${total === 1 ? "" : "s"} match.${state.nextCursor ? " Older jobs are not searched until loaded." : ""}`
    : "";
  $("#jobs-count").textContent = `(${total}${state.nextCursor ? "+" : ""})`;
}

function storeJob(job) {
  const known = state.jobs.get(job.job_id);
  const stale = known && known.updated_at && job.updated_at &&
    Date.parse(job.updated_at) < Date.parse(known.updated_at);
  // A list fetched before the last event must not move a progress bar backwards.
  if (!stale) state.jobs.set(job.job_id, known ? { ...known, ...job } : job);
  if (!state.order.includes(job.job_id)) {
    state.order.push(job.job_id);
    state.order.sort((a, b) => String(state.jobs.get(b).created_at).localeCompare(String(state.jobs.get(a).created_at)));
  }
  return state.jobs.get(job.job_id);
}

function jobChanged(job, { structural = false } = {}) {
  if (structural) renderList();
  else updateRow(job);
  if (state.viewJobId === job.job_id) updateJobView(job);
}

async function loadJobs({ more = false } = {}) {
  const params = new URLSearchParams({ limit: "50" });
  if (more && state.nextCursor) params.set("cursor", state.nextCursor);
  try {
    const { data } = await api(`jobs?${params}`);
    const items = data?.items || [];
    if (!more) {
      const seen = new Set(items.map((j) => j.job_id));
      // Jobs deleted elsewhere disappear; older pages already loaded stay.
      const oldest = items.length ? items[items.length - 1].created_at : null;
      for (const id of [...state.order]) {
        const j = state.jobs.get(id);
        if (!seen.has(id) && (!oldest || String(j.created_at) >= String(oldest)) && !state.streams.has(id)) {
          state.jobs.delete(id);
          state.order = state.order.filter((x) => x !== id);
        }
      }
      if (!state.morePages) state.nextCursor = data?.next_cursor ?? null;
    } else {
      state.morePages = true;
      state.nextCursor = data?.next_cursor ?? null;
    }
    for (const job of items) storeJob(job);
    renderList();
    for (const job of items) updateRow(state.jobs.get(job.job_id));
    ensureStreams();
  } catch (err) {
    if (err.status !== 401) notice(`Could not load jobs: ${describe(err)}`);
  }
}

async function refreshJob(id) {
  try {
    const { data } = await api(`jobs/${encodeURIComponent(id)}`);
    const job = storeJob(data);
    jobChanged(job, { structural: true });
    updateRow(job);
    return job;
  } catch (err) {
    // 404: no such job (or another key's); 422: the id in the address is not a job id at all.
    if (err.status === 404 || err.status === 422) {
      state.jobs.delete(id);
      state.order = state.order.filter((x) => x !== id);
      renderList();
      if (state.viewJobId === id) renderJobNotFound(id, err.status === 422);
    }
    return null;
  }
}

// ---------- live progress (Server-Sent Events) ----------

function ensureStreams() {
  const active = state.order.map((id) => state.jobs.get(id)).filter((j) => j && ACTIVE.has(j.status));
  active.sort((a, b) => (a.job_id === state.viewJobId ? -1 : 0) - (b.job_id === state.viewJobId ? -1 : 0) ||
    (a.status === "running" ? -1 : 0) - (b.status === "running" ? -1 : 0));
  for (const job of active) {
    if (state.streams.size >= MAX_STREAMS) break;
    if (!state.streams.has(job.job_id)) openStream(job.job_id);
  }
  // Active jobs without a stream of their own are refreshed from the list now and then.
  const unstreamed = active.some((j) => !state.streams.has(j.job_id));
  clearTimeout(state.pollTimer);
  if (unstreamed) state.pollTimer = setTimeout(() => loadJobs(), 3000);
}

function applyEvent(id, ev) {
  if (!ev.data || ev.event === "error") return;
  let payload;
  try {
    payload = parseJSON(ev.data);
  } catch {
    return;
  }
  if (payload && typeof payload === "object" && payload.job && typeof payload.job === "object") {
    payload = payload.job;
  }
  if (!payload || typeof payload !== "object") return;
  if (payload.job_id !== undefined && String(payload.job_id) !== String(id)) return;
  const known = state.jobs.get(id);
  if (!known) return;
  const update = {};
  for (const key of ["status", "progress", "progress_details", "error", "started_at", "completed_at",
    "updated_at", "cancel_requested_at", "attempts", "allowed_actions", "output_files", "summary"]) {
    if (key in payload) update[key] = payload[key];
  }
  if (update.progress_details && known.progress_details) {
    update.progress_details = { ...known.progress_details, ...update.progress_details };
  }
  const before = known.status;
  const job = storeJob({ ...known, ...update, job_id: id });
  if (before !== job.status) announce(`${jobName(job)}: ${job.status}`);
  jobChanged(job, { structural: before !== job.status });
}

async function openStream(id) {
  const ctrl = new AbortController();
  state.streams.set(id, ctrl);
  const began = Date.now();
  let failed = false;
  try {
    await readEvents(`jobs/${encodeURIComponent(id)}/events`, (ev) => applyEvent(id, ev), ctrl.signal);
  } catch (err) {
    if (ctrl.signal.aborted) {
      state.streams.delete(id);
      return;
    }
    failed = true;
    if (err.status === 404) {
      state.streams.delete(id);
      await refreshJob(id);
      return;
    }
  }
  state.streams.delete(id);
  const job = await refreshJob(id);
  if (job && ACTIVE.has(job.status)) {
    // The stream ended early (server restart, proxy timeout): come back, slower if it keeps failing.
    const fails = (failed || Date.now() - began < 2000) ? (state.streamFailures.get(id) || 0) + 1 : 0;
    state.streamFailures.set(id, fails);
    setTimeout(ensureStreams, Math.min(15000, fails * 1000));
  } else {
    state.streamFailures.delete(id);
    ensureStreams();
  }
}

// ---------- actions ----------

async function jobAction(id, action, button, where) {
  const job = state.jobs.get(id);
  const name = job ? jobName(job) : id;
  if (action === "delete" && !window.confirm(`Delete “${name}” and its files?`)) return;
  if (button) button.disabled = true;
  try {
    if (action === "delete") {
      await api(`jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
      state.jobs.delete(id);
      state.order = state.order.filter((x) => x !== id);
      state.streams.get(id)?.abort();
      renderList();
      notice(`Deleted “${name}”.`, "info");
      if (where === "view" || state.viewJobId === id) {
        location.hash = "#/";
      } else {
        $("#jobs-title").focus?.();
      }
      return;
    }
    const { data } = await api(`jobs/${encodeURIComponent(id)}/${action}`, { method: "POST" });
    const fresh = storeJob(data || { ...job });
    jobChanged(fresh, { structural: true });
    updateRow(fresh);
    ensureStreams();
  } catch (err) {
    notice(`Could not ${action} “${name}”: ${describe(err)}`);
    if (button?.isConnected) button.disabled = false;
    await refreshJob(id);
  }
}

// ---------- submitting ----------

async function submitScenario(event) {
  event.preventDefault();
  const localProblems = form.update();
  const status = $("#submit-status");
  if (localProblems.length) {
    form.showErrors(localProblems.map((p) => ({ loc: p.loc, message: p.message })));
    $("#form-errors").focus();
    status.textContent = "Fix the marked fields first.";
    return;
  }
  const button = $("#submit");
  button.disabled = true;
  status.textContent = "Submitting…";
  try {
    const body = { scenario: form.read(), formats: form.formats() };
    const { data } = await api("jobs", { method: "POST", body, headers: { "Idempotency-Key": newIdempotencyKey() } });
    form.clearErrors();
    const job = storeJob(data);
    renderList();
    ensureStreams();
    status.textContent = `Started “${jobName(job)}”.`;
    const row = state.rows.get(job.job_id);
    row?.classList.add("just-added");
    if (NARROW.matches) {
      // One panel at a time: show the jobs, with the new one in view and focused.
      showPanel("jobs");
      row?.scrollIntoView({ block: "center" });
      row?.querySelector(".job-name")?.focus({ preventScroll: true });
    } else {
      row?.scrollIntoView({ block: "nearest" });
    }
  } catch (err) {
    if (err.status === 422 || err.status === 400) {
      const problem = err.problem || {};
      form.showErrors(problem.errors || [], problem.detail);
      status.textContent = "The scenario has problems; see the marked fields.";
      $("#form-errors").focus();
    } else {
      status.textContent = "";
      notice(`Could not start the job: ${describe(err)}`);
    }
  } finally {
    button.disabled = false;
  }
}

async function checkScenario() {
  const status = $("#submit-status");
  const localProblems = form.update();
  if (localProblems.length) {
    form.showErrors(localProblems.map((p) => ({ loc: p.loc, message: p.message })));
    return;
  }
  status.textContent = "Checking…";
  try {
    await api("scenarios/validate", { method: "POST", body: { scenario: form.read() } });
    form.clearErrors();
    status.textContent = "The scenario is valid.";
  } catch (err) {
    if (err.status === 422 || err.status === 400) {
      const problem = err.problem || {};
      form.showErrors(problem.errors || [], problem.detail);
      status.textContent = "The scenario has problems; see the marked fields.";
      $("#form-errors").focus();
    } else {
      status.textContent = "";
      notice(`Could not check the scenario: ${describe(err)}`);
    }
  }
}

// ---------- presets ----------

async function loadPresets() {
  const select = $("#preset");
  try {
    const { data } = await api("presets");
    let items = Array.isArray(data) ? data : data?.items;
    if (!items && data && typeof data === "object") {
      items = Object.entries(data).map(([name, p]) => ({ name, ...p }));
    }
    state.presets = items || [];
  } catch (err) {
    if (err.status !== 401) notice(`Could not load presets: ${describe(err)}`);
    state.presets = [];
  }
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "Custom (no preset)" }));
  for (const p of state.presets) {
    const s = p.scenario || {};
    select.append(el("option", { value: p.name,
      text: `${s.name || p.name} (${formatNumber(s.total_patients ?? 0)} patients)` }));
  }
  if (chosen && state.presets.some((p) => p.name === chosen)) select.value = chosen;
}

// Until the user edits the form, it shows the default preset (also once a key lets us load it).
async function applyDefaultPreset() {
  if (state.formTouched || $("#preset").value) return;
  const first = state.presets.find((p) => p.name === "training-exercise") || state.presets[0];
  if (!first) return;
  $("#preset").value = first.name;
  await applyPreset(first.name);
}

// A preset chosen by the user replaces the form; edits are not thrown away without asking.
async function choosePreset(event) {
  const select = event.target;
  const name = select.value;
  if (!name) { // "Custom": the form stays as it is
    state.presetValue = "";
    $("#preset-description").textContent = "";
    saveDraft();
    return;
  }
  if (state.formTouched) {
    const what = select.selectedOptions[0]?.textContent || name;
    if (!window.confirm(`Replace the scenario you edited with the preset “${what}”? Your changes will be lost.`)) {
      select.value = state.presetValue;
      return;
    }
  }
  await applyPreset(name);
  state.formTouched = false;
  saveDraft();
}

async function applyPreset(name) {
  const desc = $("#preset-description");
  if (!name) {
    desc.textContent = "";
    return;
  }
  let preset = state.presets.find((p) => p.name === name);
  if (preset && !preset.scenario) {
    try {
      preset = (await api(`presets/${encodeURIComponent(name)}`)).data;
    } catch (err) {
      notice(`Could not load the preset: ${describe(err)}`);
      return;
    }
  }
  if (!preset) return;
  desc.textContent = preset.description || "";
  state.presetValue = name;
  form.fill(preset.scenario, form.formats());
  $("#submit-status").textContent = "";
}

// ---------- job view ----------

function renderJobNotFound(id, malformed = false) {
  const view = $("#job-view");
  delete view.dataset.jobId;
  view.dataset.status = "not-found";
  view.replaceChildren(
    el("p", {}, el("a", { href: "#/", class: "back", text: "← All jobs" })),
    el("h1", { id: "job-title", tabindex: "-1", text: "Job not found" }),
    el("p", { text: malformed
      ? `“${id}” is not a job id: a job id looks like 0b5f3c2e-8d1a-4c7e-9f60-2a4b6c8d0e1f. Check the address.`
      : `There is no job ${id}, or it belongs to another API key.` }));
}

function fileUrl(job, name) {
  const path = String(name).split("/").map(encodeURIComponent).join("/");
  return apiUrl(`jobs/${encodeURIComponent(job.job_id)}/files/${path}`);
}

function downloadLink(url, filename, text, ariaLabel) {
  return el("a", { href: url.href, download: filename, class: "download", "aria-label": ariaLabel,
    text, onclick: async (e) => {
      if (!getKey()) return; // plain link: the browser downloads it
      e.preventDefault();
      const a = e.currentTarget;
      a.setAttribute("aria-busy", "true");
      try {
        await downloadWithKey(url, filename);
      } catch (err) {
        notice(`Download failed: ${describe(err)}`);
      } finally {
        a.removeAttribute("aria-busy");
      }
    } });
}

function kv(rows, extra = "") {
  return el("dl", { class: `kv ${extra}`.trim() }, rows.filter(Boolean).flatMap(([k, v]) => [
    el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : String(v ?? "–"))]));
}

function mixText(mix) {
  return Object.entries(mix || {}).filter(([, v]) => v > 0).map(([k, v]) => `${label(k)} ${pct(v)}`).join(", ") || "–";
}

function scenarioSection(job) {
  const s = scenarioOf(job);
  const fronts = el("ul", { class: "plain" }, (s.fronts || []).map((f) =>
    el("li", {}, el("strong", { text: `${f.name} ${pct(f.share)}: ` }),
      Object.entries(f.nationalities || {}).map(([c, v]) => `${NATIONS[c] || c} ${pct(v)}`).join(", "))));
  const mc = s.mass_casualty || {};
  return el("section", { class: "panel", "aria-labelledby": "scenario-h" },
    el("h2", { id: "scenario-h", text: "Scenario" }),
    kv([
      ["Name", s.name], ["Patients", formatNumber(s.total_patients ?? 0)], ["Seed", String(s.seed ?? "–")],
      ["Start", fmtDate(s.start)], ["Days", s.duration_days], ["Intensity", s.intensity], ["Tempo", s.tempo],
      ["Kind of fighting", mixText(s.warfare)], ["Injury mix", mixText(s.injury_mix)], ["Fronts", fronts],
      ["Mass-casualty events", `${mc.rate_per_day ?? "–"} per day, ${mc.min_size ?? "–"}–${mc.max_size ?? "–"} casualties`],
      ["Chain of care", capacityText(s.capacity)],
      ["Formats", formatsOf(job).join(", ") || "–"],
    ]),
    el("div", { class: "row-actions" },
      el("button", { type: "button", class: "btn", text: "Use as a new scenario",
        onclick: () => useAsNewScenario(job) })),
    el("details", { class: "raw" }, el("summary", { text: "Scenario as JSON" }),
      el("pre", { tabindex: "0", text: JSON.stringify(s, null, 2) })));
}

// The medical plan in a line: unlimited, or what the plan holds (scenario.capacity).
function capacityText(capacity) {
  if (!capacity || capacity === "unlimited") return "Unlimited capacity";
  if (capacity === "sized") return "Medical plan sized to the casualties";
  const fronts = capacity.fronts || [];
  let units = 0;
  let ambulances = 0;
  let helicopters = 0;
  for (const f of fronts) {
    for (const g of f.facilities || []) units += g.count || 0;
    ambulances += f.ground_ambulances?.count || 0;
    helicopters += f.helicopters?.count || 0;
  }
  return `Medical plan: ${formatNumber(units)} medical units, ${formatNumber(ambulances)} ambulances ` +
    `and ${formatNumber(helicopters)} helicopters on ${fronts.length} front${fronts.length === 1 ? "" : "s"}`;
}

function timingsSection(job) {
  const started = job.started_at ? new Date(job.started_at) : null;
  const ended = job.completed_at ? new Date(job.completed_at) : null;
  return el("section", { class: "panel", "aria-labelledby": "timings-h" },
    el("h2", { id: "timings-h", text: "Timings" }),
    kv([
      ["Created", fmtDate(job.created_at)], ["Started", fmtDate(job.started_at)],
      ["Finished", fmtDate(job.completed_at)],
      ["Run time", started && ended ? fmtDuration((ended - started) / 1000) : "–"],
      ["Attempts", `${job.attempts ?? 0} of ${job.max_attempts ?? "–"}`],
      job.error ? ["Error", job.error] : null,
    ], "kv-compact"));
}

// The API lists no internal index; a job completed by an older version may still list its offsets
// index (format "index"), which is no output a user wants.
const shownFiles = (job) => (job.output_files || []).filter((f) => f.format !== "index" && f.format !== "attributes");

function copyButton(text, what) {
  return el("button", { type: "button", class: "btn btn-small btn-quiet copy", "aria-label": `Copy ${what}`,
    text: "Copy", onclick: async (e) => {
      const b = e.currentTarget;
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = "Copied";
      } catch {
        b.textContent = "Select and copy";
        const code = b.previousElementSibling;
        if (code) getSelection().selectAllChildren(code);
      }
      setTimeout(() => { b.textContent = "Copy"; }, 2000);
    } });
}

function filesSection(job) {
  const files = shownFiles(job);
  const section = el("section", { class: "panel", "aria-labelledby": "files-h" },
    el("h2", { id: "files-h", text: "Output files" }));
  if (job.status !== "completed") {
    section.append(el("p", { class: "muted", text: "Files appear when the job is completed." }));
    return section;
  }
  const total = files.reduce((a, f) => a + (f.bytes || 0), 0);
  section.append(el("p", { class: "archive" },
    downloadLink(archiveUrl(job), `patientgen-${job.job_id}.zip`, "Download everything as ZIP",
      `Download all ${files.length} files as one ZIP archive`),
    el("span", { class: "muted", text: ` (${files.length} files, ${fmtBytes(total)} before compression)` })));
  section.append(el("ul", { class: "files" }, files.map((f) => {
    const base = String(f.name).split("/").pop();
    const sha = String(f.sha256 || "");
    return el("li", { class: "file", "data-name": f.name },
      downloadLink(fileUrl(job, f.name), base, f.name, `Download ${f.name}, ${fmtBytes(f.bytes)}`),
      el("span", { class: "file-meta", text: [f.format, fmtBytes(f.bytes),
        f.records !== null && f.records !== undefined ? `${formatNumber(f.records)} records` : null].filter(Boolean).join(" · ") }),
      el("span", { class: "sha-box" },
        el("code", { class: "sha", title: `SHA-256 ${sha}`, "data-sha256": sha,
          "aria-label": `SHA-256 ${sha}`, text: `sha256 ${sha.slice(0, 12)}…` }),
        copyButton(sha, `the SHA-256 of ${f.name}`)));
  })));
  return section;
}

function renderJobView(job) {
  const view = $("#job-view");
  const name = jobName(job);
  view.dataset.jobId = job.job_id;
  view.dataset.status = job.status;
  view.replaceChildren(
    el("p", {}, el("a", { href: "#/", class: "back", text: "← All jobs" })),
    el("div", { class: "job-view-head" },
      el("h1", { id: "job-title", tabindex: "-1", text: name }), statusBadge(job)),
    el("p", { class: "muted job-id", text: `Job ${job.job_id}` },
      job.status === "completed" && formatsOf(job).includes("ndjson")
        ? el("button", { type: "button", class: "linkish to-casualties", text: "Browse the casualties ↓",
          onclick: () => {
            $("#casualties")?.scrollIntoView({ block: "start" });
            $("#casualties-h")?.focus();
          } })
        : null,
      job.status === "completed" && !isDelivery(job) && formatsOf(job).includes("ndjson")
        ? el("button", { type: "button", class: "linkish to-casualties to-replay", text: "Watch the replay ↓",
          onclick: () => {
            $("#replay")?.scrollIntoView({ block: "start" });
            $("#replay-h")?.focus();
          } })
        : null),
    el("div", { class: "panel job-progress-panel" },
      progressBar(job, name),
      el("p", { class: "job-progress-text", "data-role": "progress-text", text: progressText(job) }),
      job.error ? el("p", { class: "job-error", text: job.error }) : null,
      actionButtons(job, "view")),
    el("section", { class: "panel summary", "aria-labelledby": "summary-h" },
      el("h2", { id: "summary-h", text: "Summary" }),
      el("div", { class: "charts", id: "charts" })),
    replaySection(job),
    casualtiesSection(job),
    sendSection(job),
    el("div", { class: "job-columns" },
      el("div", { class: "job-col" }, filesSection(job), timingsSection(job)),
      el("div", { class: "job-col" }, scenarioSection(job))));
  drawCharts(job);
}

// The replay of the chain of care, once the job is completed with NDJSON output (its index).
function replaySection(job) {
  if (job.status !== "completed" || isDelivery(job) || !formatsOf(job).includes("ndjson")) return null;
  return replayView(job, { announce, describe, hourly: () => hourlySeries(job) });
}

// Sending the casualties to a system under test, once a generation job is completed.
function sendSection(job) {
  if (job.status !== "completed" || isDelivery(job)) return null;
  return pushSection(job, {
    describe,
    started: (delivery) => {
      storeJob(delivery);
      renderList();
      ensureStreams();
      announce(`Started ${jobName(delivery)}.`);
    },
  });
}

// The casualty browser, once the job is completed with NDJSON output (the API pages from it).
function casualtiesSection(job) {
  if (job.status !== "completed") return null;
  if (!formatsOf(job).includes("ndjson")) {
    return el("section", { class: "panel casualties", "aria-labelledby": "casualties-h" },
      el("h2", { id: "casualties-h", text: "Casualties" }),
      el("p", { class: "muted", text: "Browsing the casualties needs the NDJSON format: this job did not write it." }));
  }
  return casualtyBrowser(job, { announce, describe });
}

function drawCharts(job) {
  const box = $("#charts");
  if (!box) return;
  if (job.status !== "completed" || !job.summary) {
    box.replaceChildren(el("p", { class: "muted", text: job.status === "completed"
      ? "This job has no summary." : "Charts appear when the job is completed." }));
    return;
  }
  if (isDelivery(job)) {
    box.replaceChildren(deliveryReport(job));
    return;
  }
  renderSummary(box, job.summary, scenarioOf(job));
  const id = job.job_id;
  hourlySeries(job).then((hourly) => {
    const viewed = state.viewJobId === id && $("#job-view").dataset.jobId === id && box.isConnected;
    if (!viewed || !hourly) return;
    const chain = job.summary.care_chain;
    const whole = { ...job.summary, care_chain: { ...chain, simulation: { ...chain.simulation, hourly } } };
    renderSummary(box, whole, scenarioOf(job));
  }).catch(() => {});  // the charts drawn stay; the hourly ones are missing until the next view
}

// The care chain's per-hour series of a completed job, which its document leaves out: read
// from its summary.json (GET /jobs/{id}/summary), kept for the last few jobs viewed (a series
// can be megabytes). Null for a job without a medical plan.
const series = new Map();
const SERIES_KEPT = 3;
function hourlySeries(job) {
  if (job.status !== "completed" || !job.summary?.care_chain?.simulation) return Promise.resolve(null);
  let found = series.get(job.job_id);
  if (found) {
    series.delete(job.job_id);  // the most recent last
  } else {
    found = api(`jobs/${encodeURIComponent(job.job_id)}/summary`)
      .then(({ data }) => data.care_chain?.simulation?.hourly || null);
    found.catch(() => { if (series.get(job.job_id) === found) series.delete(job.job_id); });
  }
  series.set(job.job_id, found);
  while (series.size > SERIES_KEPT) series.delete(series.keys().next().value);
  return found;
}

function updateJobView(job) {
  const view = $("#job-view");
  if (view.hidden || state.viewJobId !== job.job_id) return;
  if (view.dataset.jobId !== job.job_id) {
    renderJobView(job); // it was still loading (or waiting for an API key)
    return;
  }
  if (view.dataset.status !== job.status || (job.error && !view.querySelector(".job-error"))) {
    const hadFocus = view.contains(document.activeElement) ? document.activeElement.dataset.action : null;
    renderJobView(job);
    if (hadFocus) (view.querySelector(`[data-action="${hadFocus}"]`) || $("#job-title")).focus();
    return;
  }
  const bar = view.querySelector(".progress");
  if (bar) updateProgressBar(bar, job);
  const text = view.querySelector('[data-role="progress-text"]');
  if (text) text.textContent = progressText(job);
}

async function showJob(id) {
  state.viewJobId = id;
  $("#home-view").hidden = true;
  const view = $("#job-view");
  view.hidden = false;
  let job = state.jobs.get(id);
  if (!job) {
    delete view.dataset.jobId;
    view.replaceChildren(
      el("p", {}, el("a", { href: "#/", class: "back", text: "← All jobs" })),
      el("p", { class: "muted", id: "job-loading", text: "Loading the job…" }));
    job = await refreshJob(id);
    if (!job) {
      const msg = $("#job-loading");
      if (msg && state.viewJobId === id) {
        msg.textContent = getKey() || $("#key-form").hidden
          ? "The job could not be loaded (the service did not answer); try again in a moment."
          : "Enter the API key at the top of the page to see this job.";
      }
      return;
    }
  }
  renderJobView(job);
  $("#job-title").focus();
  if (ACTIVE.has(job.status) || !job.summary) {
    const fresh = await refreshJob(id);
    if (fresh && state.viewJobId === id) ensureStreams();
  }
}

function showHome() {
  state.viewJobId = null;
  $("#job-view").hidden = true;
  $("#job-view").replaceChildren();
  $("#home-view").hidden = false;
}

function route() {
  const m = location.hash.match(/^#\/jobs\/([^/?#]+)/);
  if (m) showJob(decodeURIComponent(m[1]));
  else {
    const from = state.viewJobId;
    showHome();
    if (from) state.rows.get(from)?.querySelector(".job-name")?.focus();
  }
}

function reloadAll() {
  loadJobs();
  loadPresets().then(applyDefaultPreset);
  saved.refresh("");  // another key, other saved scenarios
  if (state.viewJobId) refreshJob(state.viewJobId);
}

// Redraw charts at the new width (they are drawn at pixel size so text stays legible).
let resizeTimer;
let lastWidth = window.innerWidth;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (window.innerWidth === lastWidth) return;
    lastWidth = window.innerWidth;
    const job = state.viewJobId && state.jobs.get(state.viewJobId);
    if (job) drawCharts(job);
  }, 150);
});

// ---------- draft and panels ----------

// The form is kept in this browser as the user edits it, so a reload (or a crash) loses nothing.
function saveDraft() {
  try {
    localStorage.setItem(DRAFT_STORAGE, stringifyJSON({
      version: 1, preset: $("#preset").value, scenario: form.read(), formats: form.formats(),
    }));
  } catch {
    // Storage full or disabled: no draft.
  }
}
let draftTimer;
function saveDraftSoon() {
  clearTimeout(draftTimer);
  draftTimer = setTimeout(saveDraft, 300);
}
function loadDraft() {
  try {
    const draft = parseJSON(localStorage.getItem(DRAFT_STORAGE) || "null");
    return draft && draft.version === 1 && draft.scenario && typeof draft.scenario === "object" ? draft : null;
  } catch {
    return null;
  }
}

// On narrow screens one panel shows at a time; on wide ones both, and this only records the choice.
function showPanel(which, focus = false) {
  const home = $("#home-view");
  home.dataset.show = which;
  $("#show-form").setAttribute("aria-pressed", String(which === "form"));
  $("#show-jobs").setAttribute("aria-pressed", String(which === "jobs"));
  if (focus && NARROW.matches) {
    (which === "jobs" ? $("#jobs-title") : $("#form-title")).scrollIntoView({ block: "start" });
  }
}

async function main() {
  initKeyForm();
  form = new ScenarioForm($("#scenario-form"));
  form.fill({}, ["json", "ndjson", "csv", "fhir"]);
  saved = new SavedScenarios({
    form,
    describe,
    touched: () => state.formTouched,
    filled: (what) => {
      $("#preset").value = "";
      state.presetValue = "";
      $("#preset-description").textContent = `From the ${what}.`;
      $("#submit-status").textContent = "";
      state.formTouched = false;
      saveDraft();
    },
    showProblems: (problem) => {
      form.showErrors(problem.errors || [], problem.detail);
      $("#form-errors").focus();
    },
  });
  $("#scenario-form").addEventListener("submit", submitScenario);
  $("#check").addEventListener("click", checkScenario);
  $("#preset").addEventListener("change", choosePreset);
  // Enter in a field never sends a job: only the Generate button does.
  $("#scenario-form").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target instanceof HTMLInputElement &&
        !["submit", "button", "reset", "image"].includes(e.target.type)) {
      e.preventDefault();
    }
  });
  $("#jobs-search").addEventListener("input", applyFilter);
  $("#jobs-status").addEventListener("change", applyFilter);
  $("#show-form").addEventListener("click", () => showPanel("form", true));
  $("#show-jobs").addEventListener("click", () => showPanel("jobs", true));
  $("#refresh-jobs").addEventListener("click", () => loadJobs());
  $("#more-jobs").addEventListener("click", () => loadJobs({ more: true }));
  window.addEventListener("hashchange", route);
  route();
  $("#scenario-form").addEventListener("input", (e) => {
    // The preset and the saved-scenario controls choose a scenario; they do not edit it.
    if (e.isTrusted && e.target.id !== "preset" && !e.target.closest("#saved-group")) {
      state.formTouched = true;
      saveDraftSoon();
    }
  });
  $("#scenario-form").addEventListener("click", (e) => {
    // Adding or removing fronts and nations edits the form too.
    if (e.isTrusted && e.target.closest("[data-action], #add-front")) {
      state.formTouched = true;
      saveDraftSoon();
    }
  });
  const draft = loadDraft();
  if (draft) {
    form.fill(draft.scenario, draft.formats);
    state.formTouched = true;
    $("#submit-status").textContent = "Restored the scenario you were editing (kept in this browser).";
  }
  await Promise.all([loadPresets(), loadJobs(), saved.refresh()]);
  if (draft?.preset && state.presets.some((p) => p.name === draft.preset)) {
    $("#preset").value = draft.preset;
    state.presetValue = draft.preset;
    $("#preset-description").textContent = state.presets.find((p) => p.name === draft.preset)?.description || "";
  }
  await applyDefaultPreset();
  // Jobs made elsewhere (CLI, scripts, another tab) show up without a reload.
  setInterval(() => {
    if (document.visibilityState === "visible" && !state.viewJobId) loadJobs();
  }, 15000);
  document.body.dataset.ready = "true";
}

main();
