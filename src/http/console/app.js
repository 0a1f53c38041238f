// Entry point of every console page: who is signed in (GET /v1/me), what the
// navigation shows for that role, then the page's own module.

import { get, storedKey, forgetKey } from './api.js';
import { $, $$, flash, describe } from './ui.js';

const PAGES = {
  callouts: () => import('./callouts.js'),
  'sign-in': () => import('./sign-in.js'),
  'new-callout': () => import('./new-callout.js'),
  callout: () => import('./callout.js'),
  assistants: () => import('./assistants.js'),
  sandbox: () => import('./sandbox.js'),
};

function toSignIn() {
  const next = location.pathname + location.search;
  location.assign('/console/sign-in?next=' + encodeURIComponent(next));
}

function showWho(me, body) {
  const who = $('#who');
  const role = me.role === 'admin' ? 'admin' : 'dispatcher';
  $('#who-role').textContent = body.dataset.keys === 'open'
    ? `Open sandbox: ${role}, no key needed`
    : `Signed in: ${role}`;
  who.hidden = false;
  const out = $('#sign-out');
  out.hidden = body.dataset.keys === 'open';
  out.addEventListener('click', () => {
    forgetKey();
    location.assign('/console/sign-in');
  });
  for (const node of $$('[data-role="admin"]')) node.hidden = role !== 'admin';
}

async function main() {
  const body = document.body;
  const page = body.dataset.page;
  const load = PAGES[page];
  const ctx = { page, sandbox: body.dataset.mode === 'sandbox', keysRequired: body.dataset.keys !== 'open', me: null };
  if (page !== 'sign-in') {
    if (ctx.keysRequired && !storedKey()) return toSignIn();
    try {
      ctx.me = await get('/v1/me');
    } catch (e) {
      if (e.status === 401) {
        forgetKey();
        return toSignIn();
      }
      flash(describe(e));
      return;
    }
    showWho(ctx.me, body);
  }
  if (!load) return;
  const module = await load();
  await module.init(ctx);
}

main().catch((e) => flash(describe(e) || String(e)));
