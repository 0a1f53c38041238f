//! A call answered by a machine. Routee's answering-machine detection
//! (`machineDetection`, reference §2) reports it on its own callback; it is a
//! hint, never a decision: nothing but a key press decides. The call is marked,
//! the timeline says so, the machine hears the voicemail message instead of the
//! menu, and the attempt ends `voicemail` (retried like no answer).

use super::callout::{Callout, CalloutStatus, Consequences};
use super::{CallId, Event, EventKind, Timestamp};

/// What to play to a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToMachine {
    /// The voicemail message: the callout still waits for someone.
    Message,
    /// Nothing: the callout is over, this call already decided or ended, or
    /// the policy leaves no message (`voicemail_message: false`).
    Nothing,
}

impl Callout {
    /// Machine detection reported a machine on `call`.
    pub fn on_machine(&mut self, call: CallId, now: Timestamp) -> (Consequences, ToMachine) {
        let calling = self.status == CalloutStatus::Calling;
        let mut ch = Consequences::default();
        let Some(a) = self.attempt_mut(call) else {
            return (ch, ToMachine::Nothing);
        };
        if a.is_over() || a.decision.is_some() {
            return (ch, ToMachine::Nothing);
        }
        if !a.machine {
            a.machine = true;
            ch.events.push(Event::for_call(
                now,
                EventKind::VoicemailDetected,
                a.contact,
                a.number,
            ));
        }
        let answer = if calling && self.policy.voicemail_message {
            ToMachine::Message
        } else {
            ToMachine::Nothing
        };
        (ch, answer)
    }
}
