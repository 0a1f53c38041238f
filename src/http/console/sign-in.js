// Sign-in: checks the key with GET /v1/me before keeping it in sessionStorage.

import { get, storeKey } from './api.js';
import { $, fieldError, describe } from './ui.js';

/** Only a console path is a place to go back to. */
function next() {
  const n = new URLSearchParams(location.search).get('next') || '';
  return n.startsWith('/console') && !n.startsWith('//') ? n : '/console';
}

export async function init(ctx) {
  const form = $('#sign-in');
  const input = $('#api-key');
  const error = $('#api-key-error');
  if (!ctx.keysRequired) {
    $('#sign-in p').textContent = 'This is the open sandbox: no key is needed here.';
  }
  input.focus();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      fieldError(input, error, 'Enter an API key.');
      input.focus();
      return;
    }
    try {
      await get('/v1/me', { key });
    } catch (e) {
      fieldError(input, error, e.status === 401 ? 'This key is not valid for this gateway.' : describe(e));
      input.focus();
      return;
    }
    fieldError(input, error, null);
    storeKey(key);
    location.assign(next());
  });
}
