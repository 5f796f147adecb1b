// The HTTP API of patientgen, as used by the page: JSON in, problem+json errors out,
// an optional API key (session storage only), a Server-Sent Events reader that can send headers,
// and downloads that work with a key too.

const KEY_STORAGE = "patientgen.apiKey";
export const API_ROOT = new URL("api/v1/", document.baseURI);

export function apiUrl(path) {
  return new URL(path, API_ROOT);
}

export function getKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setKey(value) {
  try {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage disabled: the key lives only until reload.
  }
}

// A fresh Idempotency-Key for a POST that creates a job (a retried request gets the same job).
export function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export class ApiError extends Error {
  constructor(status, problem) {
    const p = problem && typeof problem === "object" ? problem : {};
    super(p.detail || p.title || `HTTP ${status}`);
    this.status = status;
    this.problem = p;
  }
}

// Integers beyond 2^53 (seeds go up to 2^63-1) stay exact: they become strings.
export function parseJSON(text) {
  return JSON.parse(text, (key, value, context) => {
    if (
      typeof value === "number" &&
      Number.isInteger(value) &&
      !Number.isSafeInteger(value) &&
      context &&
      typeof context.source === "string" &&
      /^-?\d+$/.test(context.source)
    ) {
      return context.source;
    }
    return value;
  });
}

// JSON.stringify, writing strings marked as big integers as bare numbers.
export function stringifyJSON(value, space) {
  const marks = [];
  const text = JSON.stringify(value, (key, v) => {
    if (v && typeof v === "object" && v.__bigint !== undefined) {
      marks.push(v.__bigint);
      return `\u0000big${marks.length - 1}\u0000`;
    }
    return v;
  }, space);
  return text.replace(/"\\u0000big(\d+)\\u0000"/g, (_, i) => marks[Number(i)]);
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function authHeaders(headers) {
  const h = new Headers(headers || {});
  const key = getKey();
  if (key) h.set("Authorization", `Bearer ${key}`);
  return h;
}

export async function api(path, { method = "GET", body, headers, signal } = {}) {
  const h = authHeaders(headers);
  h.set("Accept", "application/json, application/problem+json");
  let payload;
  if (body !== undefined) {
    h.set("Content-Type", "application/json");
    payload = typeof body === "string" ? body : stringifyJSON(body);
  }
  let res;
  try {
    res = await fetch(apiUrl(path), { method, headers: h, body: payload, signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, { title: "Network error", detail: "The service cannot be reached." });
  }
  const text = res.status === 204 ? "" : await res.text();
  let data = null;
  if (text) {
    try {
      data = parseJSON(text);
    } catch {
      data = { detail: text.slice(0, 300) };
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401) onUnauthorized(err);
    throw err;
  }
  return { data, response: res };
}

function parseEvent(block) {
  const ev = { event: "message", data: "", id: null };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") ev.event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") ev.id = value;
  }
  ev.data = data.join("\n");
  return data.length || ev.event !== "message" ? ev : null;
}

// Reads an SSE stream with fetch (EventSource cannot send an Authorization header).
// Calls onEvent({event, data, id}) per event; resolves when the server closes the stream.
export async function readEvents(path, onEvent, signal) {
  const h = authHeaders({ Accept: "text/event-stream" });
  const res = await fetch(apiUrl(path), { headers: h, signal, cache: "no-store" });
  if (!res.ok) {
    let problem = null;
    try {
      problem = parseJSON(await res.text());
    } catch {
      // not JSON
    }
    const err = new ApiError(res.status, problem);
    if (res.status === 401) onUnauthorized(err);
    throw err;
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    buffer = buffer.replace(/\r\n|\r(?!$)/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const ev = parseEvent(block);
      if (ev) onEvent(ev);
    }
  }
  const last = parseEvent(buffer.replace(/\r/g, ""));
  if (last) onEvent(last);
}

// Downloads a URL as a file. Without a key a plain link works; with one we fetch with the header
// and hand the browser a blob.
export async function downloadWithKey(url, filename) {
  const res = await fetch(url, { headers: authHeaders(), cache: "no-store" });
  if (!res.ok) {
    let problem = null;
    try {
      problem = parseJSON(await res.text());
    } catch {
      // not JSON
    }
    const err = new ApiError(res.status, problem);
    if (res.status === 401) onUnauthorized(err);
    throw err;
  }
  const blob = await res.blob();
  const objectUrl = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = objectUrl;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(objectUrl), 60_000);
}
