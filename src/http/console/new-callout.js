// A new callout. The form is checked by POST /v1/callouts/preview, the same
// checks as creating it but nothing is created: every problem the API names is
// shown next to its field or contact row, and the preview shows what the first
// person will hear. "Start calling" is enabled only for what was last checked.
// A CSV file is sent to the API as the upload it is, until the table is edited.

import { get, request, ApiError } from './api.js';
import { $, $$, el, clear, flash, describe, fieldError, labelled } from './ui.js';
import { contactsFromCsv } from './csv.js';

// In the order a dispatcher thinks of them (the API's object has no order).
const POLICY_LABELS = {
  attempts_per_contact: 'Calls per person',
  retry_delay_s: 'Seconds between calls',
  ring_timeout_s: 'Seconds to let it ring',
  input_timeout_s: 'Seconds to wait for a key',
  reprompts: 'Repeats of the options',
  max_call_s: 'Longest call (seconds)',
};

const form = () => $('#new-callout');
let templates = [];
let csvFile = null;
let checkedAs = null;
let rowSeq = 0;

export async function init() {
  const [dialplans, assistants, policy] = await Promise.all([
    get('/v1/dialplans'),
    get('/v1/assistants').catch(() => ({ assistants: [] })),
    get('/v1/policy'),
  ]);
  templates = dialplans.dialplans;
  fillScripts(templates, assistants.assistants);
  renderPolicy(policy);
  addRow();
  wire();
  renderVariables();
  $('#name').focus();
}

function fillScripts(dialplanList, assistantList) {
  const dp = $('#dialplan');
  for (const t of dialplanList) dp.append(el('option', { value: t.name }, t.name));
  const as = $('#assistant');
  for (const a of assistantList) as.append(el('option', { value: a.name }, a.name));
  if (!assistantList.length) {
    $('#use-assistant').disabled = true;
    $('#use-assistant').parentElement.append(el('span', { class: 'hint' }, ' (none registered)'));
  }
}

function renderPolicy(policy) {
  const box = clear($('#policy'));
  const names = Object.keys(POLICY_LABELS).filter((n) => n in policy.bounds);
  names.push(...Object.keys(policy.bounds).filter((n) => !names.includes(n)));
  for (const name of names) {
    const bound = policy.bounds[name];
    const id = 'policy-' + name;
    const input = el('input', {
      id, name, type: 'number', inputmode: 'numeric', min: bound.min, max: bound.max, step: 1,
      value: policy.defaults[name], required: true,
      'aria-describedby': `${id}-hint ${id}-error`, dataset: { policy: name },
    });
    box.append(el('div', { class: 'field' },
      el('label', { for: id }, POLICY_LABELS[name] || name),
      input,
      el('p', { id: id + '-hint', class: 'hint' }, `default ${policy.defaults[name]}, from ${bound.min} to ${bound.max}`),
      el('p', { id: id + '-error', class: 'field-error', hidden: true })));
  }
}

function usingAssistant() {
  return $('#use-assistant').checked;
}

function renderVariables() {
  const box = clear($('#variables'));
  const about = $('#variables-about');
  if (usingAssistant()) {
    about.textContent = 'Given to the assistant as state.variables, with contact_name, callout_name and attempt.';
    box.append(el('div', { class: 'field wide' },
      el('label', { for: 'variables-json' }, 'Variables (JSON object)'),
      el('textarea', { id: 'variables-json', rows: 3, spellcheck: 'false', 'aria-describedby': 'variables-error' },
        '{"ticket": ""}')));
    return;
  }
  const t = templates.find((x) => x.name === $('#dialplan').value);
  $('#dialplan-about').textContent = t ? t.description || '' : '';
  const names = t ? t.variables : [];
  about.textContent = names.length
    ? `The template says these in the call. Filled in for each call: ${t.builtins.join(', ') || 'nothing else'}.`
    : 'This template needs no variables.';
  for (const v of names) {
    const id = 'var-' + v;
    const label = v.replaceAll('_', ' ');
    box.append(el('div', { class: 'field wide' },
      el('label', { for: id }, label[0].toUpperCase() + label.slice(1)),
      el('input', { id, required: true, dataset: { variable: v }, 'aria-describedby': id + '-error' }),
      el('p', { id: id + '-error', class: 'field-error', hidden: true })));
  }
}

function wire() {
  const f = form();
  for (const r of $$('input[name="script"]')) {
    r.addEventListener('change', () => {
      $('#dialplan-field').hidden = usingAssistant();
      $('#assistant-field').hidden = !usingAssistant();
      renderVariables();
    });
  }
  $('#dialplan').addEventListener('change', renderVariables);
  f.addEventListener('input', (event) => {
    if (event.target.closest('#contacts')) csvFile = null;
    stale();
  });
  f.addEventListener('change', stale);
  $('#csv').addEventListener('change', loadCsv);
  $('#add-contact').addEventListener('click', () => {
    const row = addRow();
    csvFile = null;
    stale();
    $('input', row).focus();
  });
  f.addEventListener('submit', (event) => {
    event.preventDefault();
    check();
  });
  $('#start').addEventListener('click', start);
}

// ----- the contacts table ---------------------------------------------------

function cell(label, key, value, seq, attrs = {}) {
  const id = `c${seq}-${key}`;
  const input = el('input', { value: value || '', dataset: { key }, 'aria-describedby': id + '-error', ...attrs });
  return el('td', { dataset: { label } },
    ...labelled(id, label, input),
    el('p', { id: id + '-error', class: 'field-error', hidden: true }));
}

function addRow(c = {}) {
  const seq = (rowSeq += 1);
  const remove = el('button', { type: 'button', class: 'small' }, 'Remove');
  const row = el('tr', { dataset: { seq: String(seq) } },
    el('td', { class: 'num', dataset: { label: 'Row' } }),
    cell('Name', 'name', c.name, seq, { autocomplete: 'off' }),
    cell('Phone', 'phone', c.phone, seq, { type: 'tel', autocomplete: 'off', placeholder: '+306900000001' }),
    cell('Language', 'language', c.language, seq, { placeholder: 'e.g. el-GR' }),
    el('td', {}, remove));
  remove.addEventListener('click', () => {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    if (!$('#contacts tbody').children.length) addRow();
    csvFile = null;
    renumber();
    stale();
    (next ? $('input', next) : $('#add-contact')).focus();
  });
  $('#contacts tbody').append(row);
  renumber();
  return row;
}

/** Row numbers, and labels that say which row ("Phone of contact 3"). */
function renumber() {
  $$('#contacts tbody tr').forEach((row, i) => {
    $('td.num', row).textContent = String(i + 1);
    for (const label of $$('label', row)) {
      const key = label.nextElementSibling.dataset.key;
      label.textContent = `${key[0].toUpperCase()}${key.slice(1)} of contact ${i + 1}`;
    }
    $('button', row).setAttribute('aria-label', `Remove contact ${i + 1}`);
  });
}

async function loadCsv(event) {
  const file = event.target.files[0];
  const state = $('#csv-state');
  if (!file) return;
  const { contacts, error } = contactsFromCsv(await file.text());
  clear($('#contacts tbody'));
  if (error || !contacts.length) {
    addRow();
    csvFile = file;
  } else {
    for (const c of contacts) addRow(c);
    csvFile = file;
  }
  state.textContent = error
    ? `${file.name}: ${error}`
    : `${file.name}: ${contacts.length} contacts loaded. Checking them…`;
  stale();
  const ok = await check();
  if (!ok && !error) state.textContent = `${file.name}: ${contacts.length} contacts loaded; fix the marked rows, then check again.`;
}

/** The rows that count (wholly empty ones are left out) and their contacts. */
function contactRows() {
  const rows = $$('#contacts tbody tr').filter((r) => $$('input', r).some((i) => i.value.trim()));
  const contacts = rows.map((r) => {
    const c = {};
    for (const i of $$('input', r)) if (i.value.trim()) c[i.dataset.key] = i.value.trim();
    return c;
  });
  return { rows, contacts };
}

// ----- the request ------------------------------------------------------------

function variables() {
  if (usingAssistant()) {
    const raw = $('#variables-json').value.trim();
    if (!raw) return {};
    try {
      return JSON.parse(raw);
    } catch {
      return raw; // the API names the problem
    }
  }
  // An empty field is left out, so the API names the variable as missing.
  const out = {};
  for (const i of $$('[data-variable]')) if (i.value.trim()) out[i.dataset.variable] = i.value;
  return out;
}

function calloutBody() {
  const body = { name: $('#name').value.trim() };
  if (usingAssistant()) body.assistant = $('#assistant').value;
  else body.dialplan = $('#dialplan').value;
  body.variables = variables();
  body.policy = {};
  for (const i of $$('[data-policy]')) {
    body.policy[i.dataset.policy] = i.value.trim() === '' ? null : Number(i.value);
  }
  const notify = $('#notify-url').value.trim();
  if (notify) body.notify_url = notify;
  return body;
}

/** The request to send: a CSV upload while the file is as loaded, else JSON. */
function build() {
  const body = calloutBody();
  if (csvFile) {
    const formData = new FormData();
    formData.append('callout', new Blob([JSON.stringify(body)], { type: 'application/json' }));
    formData.append('contacts', csvFile, csvFile.name);
    const rows = $$('#contacts tbody tr');
    const signature = JSON.stringify(body) + '|csv|' + csvFile.name + csvFile.size + csvFile.lastModified;
    return { send: { form: formData }, rows, signature };
  }
  const { rows, contacts } = contactRows();
  body.contacts = contacts;
  return { send: { json: body }, rows, signature: JSON.stringify(body) };
}

function stale() {
  if (checkedAs === null) return;
  checkedAs = null;
  $('#start').disabled = true;
  $('#form-state').textContent = 'Changed since the check: check again before starting.';
}

// ----- errors next to their fields -----------------------------------------------

function clearErrors() {
  flash(null);
  for (const p of $$('#new-callout .field-error')) fieldError(null, p, null);
  for (const i of $$('#new-callout [aria-invalid]')) i.removeAttribute('aria-invalid');
  for (const r of $$('#contacts tr.invalid')) r.classList.remove('invalid');
}

function place(field, rows) {
  const row = /^contacts\[(\d+)\](?:\.(\w+))?/.exec(field);
  if (row) {
    const tr = rows[Number(row[1])];
    if (!tr) return { error: $('#contacts-error') };
    tr.classList.add('invalid');
    const key = ['name', 'phone', 'language'].includes(row[2]) ? row[2] : 'phone';
    const input = $(`input[data-key="${key}"]`, tr);
    return { input, error: $('#' + input.id + '-error'), prefix: row[2] && row[2] === key ? '' : `${row[2] || 'row'}: ` };
  }
  if (field === 'contacts') return { error: $('#contacts-error') };
  const policy = /^policy\.(\w+)$/.exec(field);
  if (policy && $('#policy-' + policy[1])) return { input: $('#policy-' + policy[1]), error: $(`#policy-${policy[1]}-error`) };
  const variable = /^variables\.(\w+)$/.exec(field);
  if (variable && $('#var-' + variable[1])) return { input: $('#var-' + variable[1]), error: $(`#var-${variable[1]}-error`) };
  if (field.startsWith('variables')) return { input: $('#variables-json'), error: $('#variables-error') };
  const simple = { name: 'name', dialplan: 'dialplan', assistant: 'assistant', notify_url: 'notify-url' }[field];
  if (simple) return { input: $('#' + simple), error: $(`#${simple}-error`) };
  return null;
}

function showErrors(err, rows) {
  clearErrors();
  const details = err.details.length ? err.details : [];
  const unplaced = [];
  const messages = new Map();
  let first = null;
  for (const d of details) {
    const spot = place(d.field, rows);
    if (!spot) {
      unplaced.push(`${d.field}: ${d.message}`);
      continue;
    }
    const text = (spot.prefix || '') + d.message;
    const all = messages.has(spot.error) ? messages.get(spot.error) + ' ' + text : text;
    messages.set(spot.error, all);
    fieldError(spot.input || null, spot.error, all);
    if (spot.input && !first) first = spot.input;
    if (spot.error.id === 'notify-url-error') $('details.card').open = true;
  }
  const n = details.length;
  $('#form-state').textContent = n
    ? `${n} problem${n === 1 ? '' : 's'} to fix: see the marked fields${rows.some((r) => r.classList.contains('invalid')) ? ' and contact rows' : ''}. Nothing was created.`
    : 'Nothing was created.';
  if (unplaced.length || !n) flash(unplaced.length ? unplaced.join(' · ') : describe(err));
  if (first) first.focus();
}

// ----- check, preview, start ----------------------------------------------------

async function check() {
  const req = build();
  const state = $('#form-state');
  state.textContent = 'Checking…';
  let answer;
  try {
    answer = await request('POST', '/v1/callouts/preview', req.send);
  } catch (e) {
    $('#preview').hidden = true;
    if (e instanceof ApiError && e.status === 422) showErrors(e, req.rows);
    else {
      clearErrors();
      state.textContent = 'Nothing was created.';
      flash(describe(e));
    }
    return false;
  }
  clearErrors();
  checkedAs = req.signature;
  $('#start').disabled = false;
  const n = answer.callout.contacts.length;
  state.textContent = `Checked: ${n} contact${n === 1 ? '' : 's'}, ready to start.`;
  if (csvFile) $('#csv-state').textContent = `${csvFile.name}: ${n} contacts, all valid.`;
  renderPreview(answer);
  return true;
}

function line(item) {
  switch (item.kind) {
    case 'say':
      return [el('span', { class: 'what' }, item.interruptible ? 'says (a key interrupts):' : 'says:'), `“${item.text}”`];
    case 'pause':
      return [el('span', { class: 'what' }, 'silence:'), `${item.seconds} s`];
    case 'wait':
      return [el('span', { class: 'what' }, 'waits for a key:'), `${item.seconds} s (a key is answered at once)`];
    case 'play':
      return [el('span', { class: 'what' }, 'plays:'), item.url];
    case 'collect':
      return [el('span', { class: 'what' }, 'then:'), 'waits for a key'];
    default:
      return [el('span', { class: 'what' }, item.kind + ':'), JSON.stringify(item)];
  }
}

function renderPreview(answer) {
  const section = $('#preview');
  const first = answer.first_call;
  const list = clear($('#preview-script'));
  if (!first) {
    $('#preview-who').textContent = 'An assistant\'s first words come from Voiceflow when the call is answered: try them on the Assistants page.';
    $('#preview-verbs').textContent = '';
    section.hidden = false;
    return;
  }
  $('#preview-who').textContent = `${first.name} (${first.phone}), first call, in ${first.language}:`;
  for (const item of first.script) list.append(el('li', {}, ...line(item)));
  $('#preview-verbs').textContent = JSON.stringify({ verbs: first.verbs }, null, 2);
  section.hidden = false;
  section.scrollIntoView({ block: 'nearest' });
}

async function start() {
  if (checkedAs === null || build().signature !== checkedAs) {
    if (!(await check())) return;
  }
  const req = build();
  const button = $('#start');
  button.disabled = true;
  $('#form-state').textContent = 'Starting…';
  try {
    const created = await request('POST', '/v1/callouts', req.send);
    location.assign('/console/callouts/' + created.id);
  } catch (e) {
    button.disabled = false;
    if (e instanceof ApiError && e.status === 422) showErrors(e, req.rows);
    else {
      $('#form-state').textContent = 'Not started.';
      flash(describe(e));
    }
  }
}
