// The console's only way to the gateway: the public /v1 API, same origin,
// with the API key from this tab's sessionStorage as a Bearer token. JSON
// bodies always go out as application/json.

const KEY = 'ivr-gateway.api-key';

export function storedKey() {
  return sessionStorage.getItem(KEY) || '';
}

export function storeKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

/** An answer that was not 2xx: the API's error body, kept whole. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `the gateway answered ${status}`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.details = Array.isArray(e.details) ? e.details : [];
  }
}

function headers(extra, key) {
  const h = new Headers(extra || {});
  const token = key === undefined ? storedKey() : key;
  if (token) h.set('authorization', 'Bearer ' + token);
  return h;
}

async function parse(res) {
  if (res.status === 204) return null;
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

/**
 * `request('POST', '/v1/callouts', {json: body})`; `form` sends a FormData
 * (multipart), `key` overrides the stored key (sign-in).
 */
export async function request(method, path, { json, form, key, signal } = {}) {
  const init = { method, signal, cache: 'no-store', credentials: 'omit' };
  if (json !== undefined) {
    init.headers = headers({ 'content-type': 'application/json' }, key);
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.headers = headers({}, key);
    init.body = form;
  } else {
    init.headers = headers({}, key);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (signal && signal.aborted) throw e;
    throw new ApiError(0, { error: { code: 'network', message: 'the gateway cannot be reached: ' + e.message } });
  }
  return parse(res);
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, json, opts) => request('POST', path, { ...opts, json });

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

/**
 * Follows a Server-Sent Events stream with fetch (EventSource cannot send an
 * Authorization header): reconnects with Last-Event-ID after a drop, stops on
 * the `end` message, a 204, or a 4xx.
 *
 * onEvent(data, id) for each message; onEnd(data) once; onState('live' |
 * 'reconnecting' | 'failed', error?) as the connection changes.
 */
export async function follow(path, { lastId = null, onEvent, onEnd, onState, signal }) {
  let last = lastId;
  let retry = 2000;
  for (;;) {
    if (signal.aborted) return;
    try {
      const h = headers({ accept: 'text/event-stream' });
      if (last !== null) h.set('last-event-id', String(last));
      const res = await fetch(path, { headers: h, signal, cache: 'no-store', credentials: 'omit' });
      if (res.status === 204) {
        onEnd(null);
        return;
      }
      if (!res.ok) await parse(res);
      onState('live');
      const ended = await readStream(res.body, {
        onMessage(m) {
          if (m.retry) retry = m.retry;
          if (m.event === 'end') {
            onEnd(m.data ? JSON.parse(m.data) : null);
            return true;
          }
          if (!m.data) return false;
          if (m.id !== null) last = Number(m.id);
          onEvent(JSON.parse(m.data), m.id === null ? null : Number(m.id));
          return false;
        },
      });
      if (ended) return;
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 429) {
        onState('failed', e);
        return;
      }
    }
    onState('reconnecting');
    await sleep(retry, signal);
  }
}

/** Reads SSE messages until the body ends or onMessage returns true. */
async function readStream(body, { onMessage }) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let m = { id: null, event: 'message', data: '', retry: 0 };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += value;
    let at;
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at).replace(/\r$/, '');
      buffer = buffer.slice(at + 1);
      if (line === '') {
        if (onMessage(m)) {
          reader.cancel().catch(() => {});
          return true;
        }
        m = { id: null, event: 'message', data: '', retry: 0 };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') m.data = m.data ? m.data + '\n' + val : val;
      else if (field === 'id') m.id = val;
      else if (field === 'event') m.event = val;
      else if (field === 'retry' && /^\d+$/.test(val)) m.retry = Number(val);
    }
  }
}
