// DOM helpers. Text goes in with textContent only: nothing the API returns is
// ever parsed as markup.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** el('td', {class: 'num', dataset: {label: 'Name'}}, 'text', otherNode) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** The page's alert line (errors, or `ok` news). */
export function flash(message, kind = 'error') {
  const f = $('#flash');
  if (!message) {
    f.hidden = true;
    f.textContent = '';
    return;
  }
  f.className = kind === 'ok' ? 'flash ok' : 'flash';
  f.textContent = message;
  f.hidden = false;
}

/** An API error as one sentence a person can act on. */
export function describe(err) {
  if (!err) return '';
  if (err.status === 0) return err.message;
  if (err.status === 401) return `Not signed in (401): ${err.message}`;
  if (err.status === 403) return `Not allowed (403 ${err.code}): ${err.message}`;
  const head = err.status ? `${err.status} ${err.code}` : 'Error';
  return `${head}: ${err.message}`;
}

/** Shows `message` under a field and marks it invalid; null clears it. */
export function fieldError(input, errorEl, message) {
  if (message) {
    errorEl.textContent = message;
    errorEl.hidden = false;
    if (input) input.setAttribute('aria-invalid', 'true');
  } else {
    errorEl.textContent = '';
    errorEl.hidden = true;
    if (input) input.removeAttribute('aria-invalid');
  }
}

export function status(text, target) {
  target.textContent = text || '';
}

const STATUS_WORDS = {
  calling: 'calling',
  accepted: 'accepted',
  exhausted: 'exhausted: nobody accepted',
  cancelled: 'cancelled',
  failed: 'failed',
};

/** A callout status as a badge: the word, a symbol (CSS), then colour. */
export function badge(status) {
  return el('span', { class: `badge ${status}`, dataset: { status } }, STATUS_WORDS[status] || status);
}

export function time(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function dateTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? `today ${time(iso)}`
    : d.toLocaleString([], { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** 75_000 ms → "1 min 15 s". */
export function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function words(snake) {
  return String(snake || '').replaceAll('_', ' ');
}

/** `<label class="sr-only">` + control: a label for inputs inside table cells. */
export function labelled(id, labelText, control) {
  control.id = id;
  return [el('label', { for: id, class: 'sr-only' }, labelText), control];
}
