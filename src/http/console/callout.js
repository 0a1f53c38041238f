// A callout, live: GET /v1/callouts/{id} once, then its event stream
// (GET /v1/callouts/{id}/events, resumed with Last-Event-ID after a drop). Each
// event is added to the timeline at once; the contacts and the summary are
// read again shortly after (one read for a burst of events).

import { get, post, follow, ApiError } from './api.js';
import { $, el, clear, badge, time, dateTime, duration, flash, describe, words } from './ui.js';
import { sentence, isFinal, attemptState } from './timeline.js';

let id = '';
let callout = null;
let events = [];
let refreshing = null;

export async function init() {
  id = document.body.dataset.callout;
  try {
    callout = await get(`/v1/callouts/${id}`);
  } catch (e) {
    $('#title').textContent = e.status === 404 ? 'No such callout' : 'Callout';
    $('#live').textContent = '';
    flash(describe(e));
    return;
  }
  document.title = `${callout.name} · ivr-gateway console`;
  $('#title').textContent = callout.name;
  events = [];
  addEvents(callout.events);
  render();
  wireCancel();
  const stop = new AbortController();
  window.addEventListener('pagehide', () => stop.abort());
  follow(`/v1/callouts/${id}/events`, {
    lastId: events.length ? events.length - 1 : null,
    signal: stop.signal,
    onEvent: (event, index) => {
      if (index !== null && index < events.length) return;
      addEvents([event]);
      soon();
    },
    onEnd: () => {
      live('Finished: the timeline is complete.', false);
      soon();
    },
    onState: (state, err) => {
      if (state === 'live') live('Live: events appear here as they happen.', true);
      else if (state === 'reconnecting') live('Connection lost: reconnecting…', false);
      else live(`Live updates stopped: ${describe(err)}`, false);
    },
  });
}

function live(text, on) {
  const p = $('#live');
  p.textContent = text;
  p.classList.toggle('on', on);
}

function addEvents(list) {
  const ol = $('#timeline');
  for (const e of list) {
    events.push(e);
    ol.append(el('li', { class: isFinal(e) ? 'final' : '', dataset: { kind: e.kind, index: String(events.length - 1) } },
      el('time', { datetime: e.at }, time(e.at)),
      el('span', {}, sentence(e, callout.contacts))));
  }
}

/** Reads the callout again after a burst of events (and any events missed). */
function soon() {
  if (refreshing) return;
  refreshing = setTimeout(async () => {
    try {
      const fresh = await get(`/v1/callouts/${id}`);
      callout = fresh;
      if (fresh.events.length > events.length) addEvents(fresh.events.slice(events.length));
      render();
    } catch (e) {
      flash(describe(e));
    } finally {
      refreshing = null;
    }
  }, 250);
}

function render() {
  renderSummary();
  renderPeople();
}

function acceptedAt() {
  const e = events.find((x) => x.kind === 'callout_accepted');
  return e ? e.at : null;
}

function statusText(c) {
  if (c.status === 'accepted') return `by ${c.accepted_by.name}`;
  if (c.status === 'cancelled') return 'no further calls';
  if (c.status === 'failed') return c.failure || '';
  if (c.status === 'exhausted') return 'everyone was called';
  const a = c.attempts[c.attempts.length - 1];
  if (a && !a.outcome) return `${c.contacts[a.contact].name}, call ${a.attempt}: ${attemptState(a)}`;
  return c.next_call_at ? `next call at ${time(c.next_call_at)}` : '';
}

function renderSummary() {
  const c = callout;
  $('#status').replaceWith(Object.assign(badge(c.status), { id: 'status' }));
  $('#status-text').textContent = statusText(c);
  const at = acceptedAt();
  $('#accepted-by').textContent = c.accepted_by ? `${c.accepted_by.name} (${c.accepted_by.phone})` : c.status === 'calling' ? 'nobody yet' : 'nobody';
  $('#accepted-at').textContent = at ? time(at) : '–';
  $('#time-to-accept').textContent = at ? duration(new Date(at) - new Date(c.created_at)) : '–';
  $('#script').textContent = c.dialplan ? `template ${c.dialplan}` : `assistant ${c.assistant}`;
  $('#created').textContent = dateTime(c.created_at);
  $('#next-call').textContent = c.next_call_at ? time(c.next_call_at) : c.status === 'calling' ? '–' : 'none: finished';
  $('#cancel').hidden = c.status !== 'calling';
}

function keysOf(contact, attempt) {
  return events
    .filter((e) => e.kind === 'keys_pressed' && e.contact === contact && e.attempt === attempt)
    .map((e) => e.keys)
    .join(', ');
}

function personState(c, i, current) {
  if (c.accepted_by && c.accepted_by.contact === i) return '✓ accepted';
  if (current && current.contact === i) return `☎ now: ${attemptState(current)}`;
  const p = c.contacts[i];
  if (p.outcome) return `${words(p.outcome)} after ${p.attempts} call${p.attempts === 1 ? '' : 's'}`;
  return c.status === 'calling' ? 'not called yet' : 'not called';
}

function renderPeople() {
  const c = callout;
  const last = c.attempts[c.attempts.length - 1];
  const current = last && !last.outcome ? last : null;
  const ol = clear($('#people'));
  c.contacts.forEach((p, i) => {
    const cls = ['person'];
    if (current && current.contact === i) cls.push('current');
    if (c.accepted_by && c.accepted_by.contact === i) cls.push('accepted');
    const attempts = el('ul', { class: 'attempts' });
    for (const a of c.attempts.filter((x) => x.contact === i)) {
      const keys = keysOf(i, a.attempt);
      attempts.append(el('li', { dataset: { attempt: String(a.attempt), outcome: a.outcome || '' } },
        `Call ${a.attempt} · ${time(a.started_at)} · `,
        el('span', { class: 'outcome' }, attemptState(a)),
        keys ? ` · pressed ${keys}` : ''));
    }
    ol.append(el('li', { class: cls.join(' '), dataset: { contact: String(i) } },
      el('header', {},
        el('span', {}, el('span', { class: 'who-name' }, `${i + 1}. ${p.name}`), ' ', el('span', { class: 'phone' }, p.phone)),
        el('span', { class: 'state' }, personState(c, i, current))),
      attempts.children.length ? attempts : null));
  });
}

function wireCancel() {
  const dialog = $('#confirm-cancel');
  $('#cancel').addEventListener('click', () => dialog.showModal());
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue !== 'cancel') {
      $('#cancel').focus();
      return;
    }
    try {
      callout = await post(`/v1/callouts/${id}/cancel`);
      flash('Cancelled: no one else will be called; a call in progress is hung up.', 'ok');
      render();
      soon();
    } catch (e) {
      flash(describe(e));
      if (e instanceof ApiError && e.status === 409) soon();
    }
    $('#title').focus();
  });
}
