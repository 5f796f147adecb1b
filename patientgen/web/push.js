// "Send to a system": a completed job's casualties to a FHIR server (bundles of PUTs) or an MLLP
// listener (HL7 v2 ADT), all at once or as a replay in exercise time (POST /jobs/{id}/push).
// The delivery is a job of its own: it joins the jobs list with its progress and its report.
// Problems of a 422 are shown at their fields; nothing is sent until the API accepts the request.
import { api, newIdempotencyKey } from "./api.js";
import { el, nextId } from "./form.js";

function field(label, input, hint, wide = false) {
  const id = nextId(`push-${input.dataset.name}`);
  input.id = id;
  const error = el("p", { class: "field-error", hidden: true, id: `${id}-error` });
  const described = [hint ? `${id}-hint` : null, error.id].filter(Boolean).join(" ");
  input.setAttribute("aria-describedby", described);
  return el("div", { class: wide ? "field wide" : "field", "data-push": input.dataset.name },
    el("label", { for: id, text: label }), input,
    hint ? el("p", { class: "hint", id: `${id}-hint`, text: hint }) : null, error);
}

function radios(name, legend, options, checked) {
  const group = nextId(`push-${name}`);  // one group per form: several job views may coexist
  return el("fieldset", { class: "push-choice" }, el("legend", { text: legend }),
    ...options.map(([value, text]) => {
      const id = `${group}-${value}`;
      return el("div", { class: "check" },
        el("input", { type: "radio", id, name: group, value, checked: value === checked,
          "data-choice": name }),
        el("label", { for: id, text }));
    }));
}

// The request body the form describes (what the API validates; the form checks nothing itself).
function body(form) {
  const value = (name) => form.querySelector(`[data-name="${name}"]`).value.trim();
  const choice = (name) => form.querySelector(`[data-choice="${name}"]:checked`).value;
  const number = (name) => {  // the text itself when it is no number: the API says what is wrong
    const raw = value(name);
    return raw === "" ? null : Number.isFinite(Number(raw)) ? Number(raw) : raw;
  };
  const out = choice("target") === "fhir"
    ? { target: "fhir", url: value("url"), mode: value("mode"), bundle_size: number("bundle_size") }
    : { target: "mllp", host: value("host"), port: number("port"),
      tls: form.querySelector('[data-name="tls"]').checked };
  if (out.target === "fhir" && value("authorization")) out.authorization = value("authorization");
  if (choice("when") === "replay") {
    const start = value("start");
    out.pace = { speed: number("speed"), start: start ? new Date(start).toISOString() : "now" };
  }
  return out;
}

function clearErrors(form) {
  for (const e of form.querySelectorAll(".field-error")) {
    e.hidden = true;
    e.textContent = "";
  }
  for (const e of form.querySelectorAll('[aria-invalid="true"]')) e.removeAttribute("aria-invalid");
}

// Each problem at the field its loc names (["body", "fhir", "url"], ["body", "mllp", "pace",
// "speed"], ...); returns the texts of those that fit no field.
function showErrors(form, problems) {
  const unplaced = [];
  for (const p of problems) {
    const loc = (Array.isArray(p.loc) ? p.loc : String(p.field || "").split(".")).map(String);
    const name = ["speed", "start"].includes(loc.at(-1)) ? loc.at(-1) : loc.find((part) =>
      form.querySelector(`[data-push="${part}"]`));
    const box = name ? form.querySelector(`[data-push="${name}"]`) : null;
    const message = String(p.message || p.msg || "invalid").replace(/^Value error, /, "");
    if (!box) {
      unplaced.push(message);
      continue;
    }
    const slot = box.querySelector(".field-error");
    slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message;
    slot.hidden = false;
    box.querySelector("input, select").setAttribute("aria-invalid", "true");
  }
  return unplaced;
}

// The section of a completed generation job's view. `started(delivery)` puts the new delivery
// job in the list; `describe(err)` words an API error.
export function pushSection(job, { started, describe }) {
  const input = (name, attrs = {}) => el("input", { "data-name": name, ...attrs });
  const select = (name, options) => el("select", { "data-name": name },
    ...options.map(([value, text]) => el("option", { value, text })));
  const fhir = el("div", { class: "grid-fields", "data-target": "fhir" },
    field("FHIR base URL", input("url", { type: "url", placeholder: "https://fhir.example.org/fhir/R4",
      autocomplete: "off", spellcheck: "false" }), null, true),
    field("Bundles", select("mode", [["transaction", "Transaction (all or nothing)"],
      ["batch", "Batch (for servers that refuse transactions)"]])),
    field("Resources per bundle", input("bundle_size", { type: "number", min: "1", max: "10000",
      step: "1", value: "100", inputmode: "numeric" }), "Halved by itself when the server says 413."),
    field("Authorization header", input("authorization", { type: "password", autocomplete: "off",
      placeholder: "Bearer …" }), "Optional. Kept with the delivery to resume it, never shown again."));
  const tlsId = nextId("push-tls");
  const mllp = el("div", { class: "grid-fields", "data-target": "mllp", hidden: true },
    field("Listener host", input("host", { type: "text", autocomplete: "off", spellcheck: "false",
      placeholder: "tracking.example.org" })),
    field("Port", input("port", { type: "number", min: "1", max: "65535", step: "1", value: "2575",
      inputmode: "numeric" })),
    el("div", { class: "field check", "data-push": "tls" },
      el("input", { type: "checkbox", id: tlsId, "data-name": "tls" }),
      el("label", { for: tlsId, text: "TLS (the listener's certificate is checked)" })));
  const pace = el("div", { class: "grid-fields", "data-when": "replay", hidden: true },
    field("Speed", input("speed", { type: "number", min: "0", step: "any", value: "60", inputmode: "decimal" }),
      "Exercise seconds per second: 1 is real time, 60 an hour a minute."),
    field("Exercise start on the wall clock", input("start", { type: "datetime-local", step: "1" }),
      "Blank: when the replay begins."));
  const status = el("p", { class: "push-status", role: "status" });
  const send = el("button", { type: "submit", class: "btn btn-primary", text: "Send" });
  const form = el("form", { class: "push-form", novalidate: true },
    radios("target", "Where to", [["fhir", "A FHIR R4 server"], ["mllp", "HL7 v2 ADT over MLLP"]], "fhir"),
    fhir, mllp,
    radios("when", "When", [["now", "All at once"], ["replay", "As they happen, in exercise time"]], "now"),
    pace,
    el("div", { class: "row-actions" }, send), status);
  const toggle = () => {
    const target = form.querySelector('[data-choice="target"]:checked').value;
    fhir.hidden = target !== "fhir";
    mllp.hidden = target !== "mllp";
    pace.hidden = form.querySelector('[data-choice="when"]:checked').value !== "replay";
  };
  form.addEventListener("change", toggle);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    send.disabled = true;
    status.textContent = "Sending the request…";
    try {
      const { data } = await api(`jobs/${encodeURIComponent(job.job_id)}/push`, {
        method: "POST", body: body(form), headers: { "Idempotency-Key": newIdempotencyKey() },
      });
      status.replaceChildren("Delivery started: ",
        el("a", { href: `#/jobs/${data.job_id}`, text: "follow it" }), " (it is in the jobs list).");
      started(data);
    } catch (err) {
      const problems = err.problem?.errors || [];
      const unplaced = err.status === 422 ? showErrors(form, problems) : [];
      const first = form.querySelector('[aria-invalid="true"]');
      if (first) first.focus();
      status.textContent = err.status === 422
        ? `Not sent: ${problems.length} problem${problems.length === 1 ? "" : "s"} to fix${unplaced.length ? ` (${unplaced.join("; ")})` : ""}.`
        : `Not sent: ${describe(err)}`;
    } finally {
      send.disabled = false;
    }
  });
  return el("section", { class: "panel push", "aria-labelledby": "push-h", id: "push" },
    el("h2", { id: "push-h", text: "Send to a system" }),
    el("p", { class: "muted", text: "The casualties of this job, made again from its scenario and seed " +
      "(byte for byte its files), to a system under test. The delivery runs as a job of its own: " +
      "it survives restarts, resumes where it stopped, and reports every rejection." }),
    form);
}
