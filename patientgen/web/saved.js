// Saved scenarios (kept on the server per API key) and scenario files (JSON import and export).
//
// Nothing here replaces edits without asking: loading or importing over an edited form asks
// first, and a save never replaces a scenario of that name silently. The save is conditional
// (If-None-Match: * for a new name, If-Match with the version shown in the confirmation), so a
// scenario replaced in another tab meanwhile is not overwritten either.
import { api, parseJSON, stringifyJSON } from "./api.js";
import { el } from "./form.js";

// The server's rule for names (patientgen/jobs/service.py SCENARIO_NAME), checked here first so
// the message can name the field.
const NAME = /^[A-Za-z0-9_.-](?:[A-Za-z0-9 _.-]{0,98}[A-Za-z0-9_.-])?$/;
const NAME_RULE = "1 to 100 letters, digits, spaces, “_”, “.” or “-”, no space at either end";

function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

// host: the page's own parts this needs.
//   form: the ScenarioForm; touched(): has the user edited the form since it was last filled;
//   filled(what): the form now shows `what` (clears the preset and the edited mark, saves the draft);
//   describe(err): a sentence for an error; showProblems(problem): marks a 422's fields.
export class SavedScenarios {
  constructor(host) {
    this.host = host;
    this.$ = (sel) => document.querySelector(sel);
    this.items = [];
    this.$("#saved-load").addEventListener("click", () => this.load());
    this.$("#saved-save").addEventListener("click", () => this.save());
    this.$("#saved-delete").addEventListener("click", () => this.remove());
    this.$("#saved-select").addEventListener("change", () => this.syncButtons());
    this.$("#export-json").addEventListener("click", () => this.exportFile());
    this.$("#import-json").addEventListener("change", (e) => this.importFile(e.target));
    this.syncButtons();
  }

  status(text) {
    this.$("#saved-status").textContent = text;
  }

  selected() {
    return this.$("#saved-select").value;
  }

  syncButtons() {
    const none = !this.selected();
    this.$("#saved-load").disabled = none;
    this.$("#saved-delete").disabled = none;
  }

  async refresh(keep = this.selected()) {
    const select = this.$("#saved-select");
    try {
      const { data } = await api("saved-scenarios");
      this.items = data?.items || [];
    } catch (err) {
      if (err.status !== 401) this.status(`Could not list saved scenarios: ${this.host.describe(err)}`);
      this.items = [];
    }
    select.replaceChildren(el("option", {
      value: "", text: this.items.length ? "Choose a saved scenario" : "None saved yet",
    }));
    for (const s of this.items) {
      select.append(el("option", { value: s.name,
        text: `${s.name} (version ${s.version}, ${when(s.updated_at)})` }));
    }
    if (keep && this.items.some((s) => s.name === keep)) select.value = keep;
    this.syncButtons();
  }

  async load() {
    const name = this.selected();
    if (!name) return;
    if (this.host.touched() &&
        !window.confirm(`Replace the scenario you edited with the saved scenario “${name}”? Your changes will be lost.`)) {
      return;
    }
    try {
      const { data } = await api(`saved-scenarios/${encodeURIComponent(name)}`);
      this.host.form.fill(data.scenario, this.host.form.formats());
      this.host.filled(`saved scenario “${name}”`);
      this.$("#saved-name").value = name;
      this.status(`Loaded “${name}” (version ${data.version}).`);
    } catch (err) {
      this.status(`Could not load “${name}”: ${this.host.describe(err)}`);
      if (err.status === 404) await this.refresh("");
    }
  }

  async save() {
    const input = this.$("#saved-name");
    const name = input.value.trim() || this.$("#f-name").value.trim();
    if (!NAME.test(name)) {
      this.status(`The name must be ${NAME_RULE}.`);
      input.focus();
      return;
    }
    input.value = name;
    const problems = this.host.form.update();
    if (problems.length) {
      this.host.showProblems({ errors: problems.map((p) => ({ loc: p.loc, message: p.message })) });
      this.status("Fix the marked fields first; nothing was saved.");
      return;
    }
    const path = `saved-scenarios/${encodeURIComponent(name)}`;
    const body = { scenario: this.host.form.read() };
    let headers = { "If-None-Match": "*" };
    for (;;) {
      try {
        const { data } = await api(path, { method: "PUT", body, headers });
        this.host.form.clearErrors();
        await this.refresh(name);  // the list first: the status then describes what is shown
        this.status(data.version === 1 ? `Saved “${name}”.` : `Replaced “${name}” (now version ${data.version}).`);
        return;
      } catch (err) {
        if (err.status === 412 && err.problem?.current_version) {
          const v = err.problem.current_version;
          const again = headers["If-Match"] ? " It was changed elsewhere since you confirmed." : "";
          if (!window.confirm(`A saved scenario “${name}” exists (version ${v}).${again} Replace it with this one?`)) {
            this.status(`Nothing saved: “${name}” is unchanged.`);
            return;
          }
          headers = { "If-Match": `"${v}"` };
          continue;
        }
        if (err.status === 422 || err.status === 400) {
          this.host.showProblems(err.problem || {});
          this.status("The scenario has problems; nothing was saved.");
        } else {
          this.status(`Could not save “${name}”: ${this.host.describe(err)}`);
        }
        return;
      }
    }
  }

  async remove() {
    const name = this.selected();
    if (!name || !window.confirm(`Delete the saved scenario “${name}”? Jobs made from it keep their copy.`)) return;
    let said;
    try {
      await api(`saved-scenarios/${encodeURIComponent(name)}`, { method: "DELETE" });
      said = `Deleted “${name}”.`;
    } catch (err) {
      said = err.status === 404 ? `“${name}” was already deleted.` : `Could not delete “${name}”: ${this.host.describe(err)}`;
    }
    await this.refresh("");  // the list first: the status then describes what is shown
    this.status(said);
  }

  // A scenario file as the CLI and the API take it (`patientgen generate --scenario FILE`).
  exportFile() {
    const scenario = this.host.form.read();
    const text = `${stringifyJSON(scenario, 2)}\n`;
    const base = String(scenario.name || "scenario").replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^-+|-+$/g, "") || "scenario";
    const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    const a = el("a", { href: url, download: `${base}.json`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    this.status(`Exported “${base}.json”.`);
  }

  // Takes a scenario file, or anything holding one under "scenario" (a job's request or config),
  // then checks it with the service so its problems are marked at once.
  async importFile(input) {
    const file = input.files?.[0];
    input.value = "";
    if (!file) return;
    let doc;
    try {
      doc = parseJSON(await file.text());
    } catch (err) {
      this.status(`“${file.name}” is not JSON: ${err.message}. The form is unchanged.`);
      return;
    }
    const scenario = doc && typeof doc === "object" && doc.scenario && typeof doc.scenario === "object"
      ? doc.scenario : doc;
    if (!scenario || typeof scenario !== "object" || Array.isArray(scenario)) {
      this.status(`“${file.name}” holds no scenario (a JSON object). The form is unchanged.`);
      return;
    }
    if (this.host.touched() &&
        !window.confirm(`Replace the scenario you edited with the one in “${file.name}”? Your changes will be lost.`)) {
      return;
    }
    const formats = Array.isArray(doc.formats) ? doc.formats : this.host.form.formats();
    this.host.form.fill(scenario, formats);
    this.host.filled(`file “${file.name}”`);
    try {
      await api("scenarios/validate", { method: "POST", body: { scenario: this.host.form.read() } });
      this.status(`Imported “${file.name}”; the scenario is valid.`);
    } catch (err) {
      if (err.status === 422 || err.status === 400) {
        this.host.showProblems(err.problem || {});
        this.status(`Imported “${file.name}”; it has problems, marked below.`);
      } else {
        this.status(`Imported “${file.name}”; it could not be checked: ${this.host.describe(err)}`);
      }
    }
  }
}
