// Timeline events (as GET /v1/callouts/{id} and the event stream give them) in
// words, and attempts in words.

import { time, words } from './ui.js';

const FINAL = new Set(['callout_accepted', 'callout_exhausted', 'callout_cancelled', 'callout_failed']);

export function isFinal(event) {
  return FINAL.has(event.kind);
}

/** One sentence for one event; `people` are the callout's contacts. */
export function sentence(e, people) {
  const who = e.contact !== undefined && e.contact !== null && people[e.contact] ? people[e.contact].name : 'someone';
  const n = e.attempt ? ` (call ${e.attempt})` : '';
  switch (e.kind) {
    case 'callout_created': return 'Callout created.';
    case 'call_scheduled': return `Next: ${who}${n} at ${time(e.due)}.`;
    case 'call_placed': return `Calling ${who}${n}.`;
    case 'placement_retry': return `Could not place the call to ${who}${n} (${e.reason}); trying again at ${time(e.retry_at)}.`;
    case 'placement_unconfirmed': return `The carrier did not confirm the call to ${who}${n} (${e.reason}); waiting for news of it.`;
    case 'call_status': return `${who}${n}: ${callStatus(e.status)}.`;
    case 'keys_pressed': return `${who} pressed ${e.keys}.`;
    case 'voicemail_detected': return `An answering machine took the call to ${who}${n}: the voicemail message is left, no menu.`;
    case 'decided': return e.decision === 'accepted' ? `${who} accepted.` : `${who} rejected.`;
    case 'attempt_ended': return `Call ${e.attempt || ''} to ${who} ended: ${words(e.outcome)}${e.reason ? ` (${e.reason})` : ''}.`;
    case 'contact_done': return `Done with ${who}; moving on.`;
    case 'hangup_requested': return `Hanging up the call to ${who}.`;
    case 'conversation_fallback': return `${who} got the fallback conversation (${e.reason}).`;
    case 'reconciled': return `Learnt from the carrier that the call to ${who} is ${callStatus(e.status)}.`;
    case 'callout_accepted': return `ACCEPTED by ${who}.`;
    case 'callout_exhausted': return 'Nobody accepted: the list is exhausted.';
    case 'callout_cancelled': return 'Cancelled by the dispatcher.';
    case 'callout_failed': return `Failed: ${e.reason}.`;
    case 'notify_delivered': return 'The notify URL was told.';
    case 'notify_failed': return `The notify URL could not be told (${e.reason})${e.retry_at ? `; trying again at ${time(e.retry_at)}` : ''}.`;
    default: return words(e.kind);
  }
}

function callStatus(s) {
  return {
    Queued: 'queued at the carrier',
    Initiated: 'dialling',
    Ringing: 'ringing',
    InProgress: 'answered, in progress',
    Completed: 'call completed',
    Busy: 'busy',
    NoAnswer: 'no answer',
    Failed: 'the call failed',
  }[s] || words(s);
}

const ATTEMPT_STATES = {
  dialing: 'dialling',
  queued: 'queued',
  initiated: 'dialling',
  ringing: 'ringing',
  in_progress: 'in progress (answered)',
  completed: 'call over, waiting for a last key',
  busy: 'busy',
  no_answer: 'no answer',
  failed: 'failed',
  not_placed: 'not placed',
};

/** An attempt's state in words: its outcome once over, else where the call is. */
export function attemptState(a) {
  if (a.outcome) return words(a.outcome);
  return ATTEMPT_STATES[a.status] || words(a.status);
}
