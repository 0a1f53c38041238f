// Assistants (admin): the registry (GET/POST /v1/assistants, PATCH to rotate
// the key, DELETE) and the conversation tools (launch, then key presses, text
// or silence), each turn shown as Voiceflow's traces and the Routee verbs.
// A key typed here is sent once and the field emptied; answers never hold it.

import { get, request } from './api.js';
import { $, $$, el, clear, flash, describe, fieldError, dateTime } from './ui.js';

let assistants = [];

export async function init(ctx) {
  if (ctx.me.role !== 'admin') {
    const note = $('#admin-only');
    note.textContent = 'Assistants are managed with an admin key. You are signed in with a dispatcher key: the gateway refuses these actions to it (403).';
    note.hidden = false;
    return;
  }
  $('#admin-area').hidden = false;
  $('#try-session').value = 'console-' + Math.random().toString(36).slice(2, 8);
  wireRegister();
  wireDialogs();
  wireTry();
  await load();
}

async function load() {
  const state = $('#registry-state');
  try {
    assistants = (await get('/v1/assistants')).assistants;
  } catch (e) {
    state.textContent = '';
    flash(describe(e));
    return;
  }
  state.textContent = assistants.length ? `${assistants.length} registered.` : 'None registered yet.';
  $('#assistants').hidden = !assistants.length;
  const body = clear($('#assistants tbody'));
  for (const a of assistants) body.append(row(a));
  const select = clear($('#try-assistant'));
  for (const a of assistants) select.append(el('option', { value: a.id }, a.name));
}

function row(a) {
  const rotate = el('button', { type: 'button', class: 'small', 'aria-label': `Rotate key of ${a.name}` }, 'Rotate key');
  const remove = el('button', { type: 'button', class: 'small', 'aria-label': `Delete ${a.name}` }, 'Delete');
  const tryIt = el('button', { type: 'button', class: 'small', 'aria-label': `Try it with ${a.name}` }, 'Try it');
  rotate.addEventListener('click', () => openRotate(a));
  remove.addEventListener('click', () => openDelete(a));
  tryIt.addEventListener('click', () => {
    $('#try-assistant').value = a.id;
    $('#try-assistant').focus();
  });
  const project = a.project_name ? `${a.project_name}` : '–';
  return el('tr', { dataset: { id: a.id, name: a.name } },
    el('td', { dataset: { label: 'Name' } }, el('strong', {}, a.name)),
    el('td', { dataset: { label: 'Voiceflow project' } }, project),
    el('td', { dataset: { label: 'Version' } }, a.version),
    el('td', { dataset: { label: 'Key' } }, el('code', {}, '…' + a.key_hint)),
    el('td', { dataset: { label: 'Added' } }, dateTime(a.created_at)),
    el('td', { dataset: { label: 'Actions' } }, el('span', { class: 'actions' }, tryIt, rotate, remove)));
}

// ----- register ------------------------------------------------------------------

const REGISTER_FIELDS = { name: 'reg-name', api_key: 'reg-key', version: 'reg-version' };

function wireRegister() {
  const form = $('#register');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { api_key: $('#reg-key').value.trim(), version: $('#reg-version').value.trim() || 'production' };
    const name = $('#reg-name').value.trim();
    if (name) body.name = name;
    if ($('#reg-voice').value) body.voice = $('#reg-voice').value;
    for (const id of Object.values(REGISTER_FIELDS)) fieldError($('#' + id), $(`#${id}-error`), null);
    fieldError(null, $('#register-error'), null);
    $('#register-state').textContent = 'Checking the key with Voiceflow…';
    try {
      const a = await request('POST', '/v1/assistants', { json: body });
      form.reset();
      $('#register-state').textContent = `Registered ${a.name}. The key is stored encrypted and will not be shown again.`;
      flash(`Registered ${a.name}.`, 'ok');
      await load();
    } catch (e) {
      $('#register-state').textContent = 'Not registered.';
      showFieldErrors(e, REGISTER_FIELDS, $('#register-error'));
    }
  });
}

/** The API's per-field problems under their fields; the rest in `fallback`. */
function showFieldErrors(err, fields, fallback) {
  const other = [];
  let first = null;
  for (const d of err.details || []) {
    const id = fields[d.field.split(/[.[]/)[0]];
    if (id) {
      fieldError($('#' + id), $(`#${id}-error`), d.message);
      first = first || $('#' + id);
    } else other.push(`${d.field}: ${d.message}`);
  }
  if (other.length || !err.details || !err.details.length) {
    fieldError(null, fallback, other.length ? other.join(' · ') : describe(err));
  }
  if (first) first.focus();
}

// ----- rotate, delete --------------------------------------------------------------

let target = null;

function openRotate(a) {
  target = a;
  $('#rotate-name').textContent = a.name;
  $('#rotate-key').value = '';
  fieldError($('#rotate-key'), $('#rotate-error'), null);
  $('#rotate-dialog').showModal();
  $('#rotate-key').focus();
}

function openDelete(a) {
  target = a;
  $('#delete-name').textContent = a.name;
  fieldError(null, $('#delete-error'), null);
  $('#delete-dialog').showModal();
}

function wireDialogs() {
  const rotate = $('#rotate-dialog');
  $('#rotate').addEventListener('submit', async (event) => {
    if (event.submitter && event.submitter.value !== 'rotate') return;
    event.preventDefault();
    const key = $('#rotate-key').value.trim();
    try {
      await request('PATCH', `/v1/assistants/${target.id}`, { json: { api_key: key } });
    } catch (e) {
      const d = (e.details || []).find((x) => x.field === 'api_key');
      fieldError($('#rotate-key'), $('#rotate-error'), d ? d.message : describe(e));
      $('#rotate-key').focus();
      return;
    }
    $('#rotate-key').value = '';
    rotate.close('done');
    flash(`The key of ${target.name} was replaced.`, 'ok');
    await load();
  });
  const del = $('#delete-dialog');
  del.addEventListener('close', async () => {
    if (del.returnValue !== 'delete') return;
    try {
      await request('DELETE', `/v1/assistants/${target.id}`);
      flash(`Deleted ${target.name}.`, 'ok');
    } catch (e) {
      flash(describe(e));
    }
    await load();
  });
}

// ----- try it ------------------------------------------------------------------------

function sessionPath(tool) {
  const a = $('#try-assistant').value;
  const s = $('#try-session').value.trim();
  return `/v1/assistants/${encodeURIComponent(a)}/sessions/${encodeURIComponent(s)}/${tool}`;
}

function wireTry() {
  $('#try').addEventListener('submit', async (event) => {
    event.preventDefault();
    let variables;
    try {
      variables = JSON.parse($('#try-variables').value || '{}');
    } catch (e) {
      $('#try-state').textContent = `The variables are not JSON: ${e.message}`;
      return;
    }
    clear($('#turns'));
    turns = 0;
    if (await turn('launch', { variables }, 'launch')) $('#try-input').hidden = false;
  });
  for (const b of $$('#try-input [data-digit]')) {
    b.addEventListener('click', () => turn('interact', { digits: b.dataset.digit }, `pressed ${b.dataset.digit}`));
  }
  $('#try-say').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = $('#try-text').value.trim();
    if (text) turn('interact', { text }, `said “${text}”`).then(() => { $('#try-text').value = ''; });
  });
  $('#try-silence').addEventListener('click', () => turn('interact', { no_reply: true }, 'stayed silent'));
}

let turns = 0;

async function turn(tool, body, what) {
  const state = $('#try-state');
  state.textContent = 'Asking Voiceflow…';
  try {
    const report = await request('POST', sessionPath(tool), { json: body });
    for (const open of $$('#turns details[open]')) open.open = false;
    turns += 1;
    $('#turns').prepend(renderTurn(report, `${turns}. ${what}`));
    state.textContent = report.ends_call ? 'The call would end here.' : 'Your turn: press a key, say something, or stay silent.';
    return true;
  } catch (e) {
    state.textContent = describe(e);
    return false;
  }
}

function traceLine(t) {
  const p = t.payload || {};
  let text = '';
  if (typeof p === 'string') text = p;
  else if (p.message) text = p.message;
  else if (p.buttons) text = p.buttons.map((b, i) => `${i + 1}: ${b.name}`).join(', ');
  else if (p.name) text = p.name;
  return el('li', {}, el('code', {}, t.type), text ? ` ${text}` : '');
}

function renderTurn(r, what) {
  const traces = el('ul', {}, ...r.traces.map(traceLine));
  const facts = [];
  if (r.decision) facts.push(`decision: ${r.decision}`);
  if (r.menu && r.menu.length) facts.push('keys: ' + r.menu.map((m) => `${m.digit} = ${m.label}`).join(', '));
  if (r.no_reply_timeout) facts.push(`silence after ${r.no_reply_timeout} s goes back as no-reply`);
  if (r.ends_call) facts.push('the call ends after this');
  return el('li', { dataset: { turn: String(r.turn) } },
    el('h3', {}, `${what} (sent to Voiceflow as ${r.input.sent_as})`),
    el('p', { class: 'hint' }, 'Voiceflow answered:'),
    traces,
    facts.length ? el('p', {}, facts.join(' · ')) : null,
    el('details', { open: true }, el('summary', {}, 'The Routee verbs'), el('pre', { tabindex: '0' }, JSON.stringify(r.dialplan, null, 2))));
}

