// The sandbox: start the seed scenario (POST /v1/sandbox/seed), and edit what
// the simulated phones do (GET/PUT /v1/sandbox/callees, the behaviour-file
// format of SIM_CALLEES_FILE). Behaviours the table cannot show (one per
// attempt, custom ring times) are edited as JSON in their row.

import { get, request } from './api.js';
import { $, $$, el, clear, flash, describe, fieldError, labelled } from './ui.js';

const KINDS = [
  ['accepts', 'Answers and presses 1'],
  ['press', 'Answers and presses keys'],
  ['silent', 'Answers, presses nothing'],
  ['hang_up', 'Answers, then hangs up'],
  ['never_answers', 'Never answers'],
  ['rejects', 'Declines the call'],
  ['busy', 'Line busy'],
  ['fails', 'The call fails'],
  ['custom', 'Something else (JSON)'],
];
const DETAIL_LABEL = { press: 'Keys, one turn per comma', hang_up: 'Hangs up after (seconds)', custom: 'Behaviour (JSON)' };
const DEFAULT_RING = 2;

let seq = 0;

export async function init() {
  $('#seed').addEventListener('click', startSeed);
  $('#add-callee').addEventListener('click', () => {
    const row = addRow('', { kind: 'accepts', detail: '' });
    $('input', row).focus();
  });
  $('#callees').addEventListener('submit', (event) => {
    event.preventDefault();
    save();
  });
  await load();
}

async function startSeed() {
  const button = $('#seed');
  button.disabled = true;
  $('#seed-state').textContent = 'Starting…';
  try {
    const c = await request('POST', '/v1/sandbox/seed');
    location.assign('/console/callouts/' + c.id);
  } catch (e) {
    button.disabled = false;
    $('#seed-state').textContent = '';
    flash(describe(e));
  }
}

async function load() {
  const file = await get('/v1/sandbox/callees');
  clear($('#callee-rows tbody'));
  addRow('default', fromJson(file.default));
  for (const [phone, script] of Object.entries(file)) {
    if (phone !== 'default') addRow(phone, fromJson(script));
  }
}

/** A behaviour-file script as {kind, detail} for the table. */
function fromJson(v) {
  if (typeof v === 'string') return { kind: v, detail: '' };
  const [name, p] = Object.entries(v || {})[0] || [];
  const ring = p && (p.ring_s === undefined || p.ring_s === DEFAULT_RING);
  if (name === 'press' && ring && p.on_prompt && Array.isArray(p.keys)) {
    return p.keys.length === 1 && p.keys[0] === '1' ? { kind: 'accepts', detail: '' } : { kind: 'press', detail: p.keys.join(', ') };
  }
  if (name === 'silent' && ring) return { kind: 'silent', detail: '' };
  if (name === 'hang_up' && ring) return { kind: 'hang_up', detail: String(p.after_s) };
  return { kind: 'custom', detail: JSON.stringify(v) };
}

/** A row as a behaviour-file script; throws a message when it cannot be one. */
function toJson(kind, detail) {
  switch (kind) {
    case 'press': {
      const keys = detail.split(',').map((k) => k.trim()).filter(Boolean);
      if (!keys.length) throw new Error('give the keys to press, e.g. 2 or 9, 1');
      return { press: { keys } };
    }
    case 'hang_up': {
      const s = Number(detail);
      if (!detail.trim() || !(s >= 0)) throw new Error('give the seconds after answering, e.g. 3');
      return { hang_up: { after_s: s } };
    }
    case 'custom':
      try {
        return JSON.parse(detail);
      } catch (e) {
        throw new Error('not JSON: ' + e.message);
      }
    default:
      return kind;
  }
}

function addRow(phone, { kind, detail }) {
  const n = (seq += 1);
  const isDefault = phone === 'default';
  const select = el('select', { dataset: { role: 'kind' }, 'aria-describedby': `cal${n}-error` },
    ...KINDS.map(([value, text]) => el('option', { value, selected: value === kind }, text)));
  const detailInput = el('input', { value: detail, dataset: { role: 'detail' }, spellcheck: 'false', 'aria-describedby': `cal${n}-error` });
  const detailLabel = el('label', { for: `cal${n}-detail` }, '');
  detailInput.id = `cal${n}-detail`;
  const phoneCell = isDefault
    ? el('td', { dataset: { label: 'Phone' } }, el('strong', {}, 'Everyone else'))
    : el('td', { dataset: { label: 'Phone' } }, ...labelled(`cal${n}-phone`, 'Phone number', el('input', { value: phone, type: 'tel', dataset: { role: 'phone' }, placeholder: '+306900000009' })));
  const remove = isDefault ? '' : el('button', { type: 'button', class: 'small', 'aria-label': 'Remove this phone' }, 'Remove');
  const row = el('tr', { dataset: { phone, seq: String(n) } },
    phoneCell,
    el('td', { dataset: { label: 'Does' } }, ...labelled(`cal${n}-kind`, isDefault ? 'What everyone else does' : 'What this phone does', select)),
    el('td', { dataset: { label: 'Details' } }, el('div', { class: 'field' }, detailLabel, detailInput),
      el('p', { id: `cal${n}-error`, class: 'field-error', hidden: true })),
    el('td', {}, remove));
  const sync = () => {
    const k = select.value;
    detailLabel.textContent = DETAIL_LABEL[k] || '';
    detailLabel.parentElement.hidden = !DETAIL_LABEL[k];
    if (k === 'press' && !detailInput.value) detailInput.value = '1';
  };
  select.addEventListener('change', sync);
  sync();
  if (remove) remove.addEventListener('click', () => { row.remove(); $('#add-callee').focus(); });
  $('#callee-rows tbody').append(row);
  return row;
}

function rowError(row, message) {
  const p = $('.field-error', row);
  fieldError($('select', row), p, message);
  row.classList.toggle('invalid', Boolean(message));
}

async function save() {
  const file = {};
  let bad = null;
  flash(null);
  fieldError(null, $('#callees-error'), null);
  for (const row of $$('#callee-rows tbody tr')) {
    rowError(row, null);
    const phoneInput = $('[data-role="phone"]', row);
    const phone = phoneInput ? phoneInput.value.trim() : 'default';
    if (!phone) continue;
    try {
      file[phone] = toJson($('[data-role="kind"]', row).value, $('[data-role="detail"]', row).value);
    } catch (e) {
      rowError(row, e.message);
      bad = bad || row;
    }
  }
  if (bad) {
    $('select', bad).focus();
    return;
  }
  try {
    await request('PUT', '/v1/sandbox/callees', { json: file });
  } catch (e) {
    showSaveError(e);
    return;
  }
  $('#callees-state').textContent = 'Saved: the next calls use these.';
  await load();
}

function showSaveError(e) {
  const d = (e.details || [])[0];
  const entry = d && d.field.startsWith('callees.') ? d.field.slice('callees.'.length) : '';
  const row = entry && $$('#callee-rows tbody tr').find((r) => {
    const input = $('[data-role="phone"]', r);
    const phone = input ? input.value.trim() : 'default';
    return entry === phone || entry.startsWith(phone + '.') || entry.startsWith(phone + ' ');
  });
  if (row) {
    rowError(row, d.message);
    $('select', row).focus();
  } else {
    fieldError(null, $('#callees-error'), d ? `${d.field}: ${d.message}` : describe(e));
  }
  $('#callees-state').textContent = 'Not saved.';
}
