// The callouts list: GET /v1/callouts, newest first, by status, a page at a
// time (the `next` cursor goes into the URL, so Back works).

import { get } from './api.js';
import { $, el, clear, badge, dateTime, flash, describe } from './ui.js';

const PAGE_SIZE = 25;

export async function init() {
  const params = new URLSearchParams(location.search);
  const status = params.get('status') || '';
  const before = params.get('before') || '';
  const select = $('#status');
  select.value = status;
  $('#filter').addEventListener('submit', (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    if (select.value) q.set('status', select.value);
    location.assign('/console' + (q.toString() ? '?' + q : ''));
  });

  const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (status) q.set('status', status);
  if (before) q.set('before', before);
  const state = $('#list-state');
  let answer;
  try {
    answer = await get('/v1/callouts?' + q);
  } catch (e) {
    state.textContent = '';
    flash(describe(e));
    return;
  }
  const rows = clear($('#callouts tbody'));
  for (const c of answer.callouts) rows.append(row(c));
  const what = status ? `${status} callouts` : 'callouts';
  state.textContent = answer.callouts.length
    ? `${answer.callouts.length} ${what}${before ? ' (older page)' : ''}, newest first.`
    : `No ${what}${before ? ' older than these' : ' yet'}.`;
  $('#callouts').hidden = !answer.callouts.length;

  const newest = $('#newest');
  newest.hidden = !before;
  newest.href = '/console' + (status ? '?status=' + encodeURIComponent(status) : '');
  const older = $('#older');
  older.hidden = !answer.next;
  if (answer.next) {
    const n = new URLSearchParams({ before: answer.next });
    if (status) n.set('status', status);
    older.href = '/console?' + n;
  }
}

function row(c) {
  const link = el('a', { href: '/console/callouts/' + c.id }, c.name || c.id);
  const accepted = c.accepted_by ? c.accepted_by.name : '–';
  return el(
    'tr',
    { dataset: { id: c.id } },
    el('td', { dataset: { label: 'Name' } }, link),
    el('td', { dataset: { label: 'Status' } }, badge(c.status)),
    el('td', { dataset: { label: 'Accepted by' } }, accepted),
    el('td', { dataset: { label: 'Contacts' } }, String(c.contacts.length)),
    el('td', { dataset: { label: 'Created' } }, el('time', { datetime: c.created_at }, dateTime(c.created_at))),
  );
}
