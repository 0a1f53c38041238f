//! A call answered by a machine (Routee's `machineDetection.eventUrl`): the
//! conversation marks it (`Callout::on_machine`, never a decision) and the
//! machine hears the voicemail message after its beep, in the call's language,
//! instead of the menu. The call then ends; the attempt is `voicemail`.

use super::turn::dialplan_json;
use super::{Applied, Engine, dialog};
use crate::dialplan::phrases::Phrases;
use crate::dialplan::render::{self, Voice};
use crate::domain::voicemail::ToMachine;
use crate::domain::{CallId, Callout, CalloutId, Script};
use crate::routee::{Dialplan, Verb};

/// The silence before the message: the machine's beep and the start of its
/// recording (reference §2: when Routee reports relative to the beep is a GAP).
const AFTER_BEEP_S: u32 = 1;

impl Engine {
    /// Answers the machine detection callback of `call`. Never fails: a
    /// dialplan is always answered (a one-second pause when there is nothing to say).
    pub async fn on_machine(&self, id: CalloutId, call: CallId) -> String {
        let nothing = || dialplan_json(&Dialplan::new(vec![Verb::pause(1)]));
        let applied = match self.update(id, |c, now| c.on_machine(call, now)).await {
            Ok(applied) => applied,
            Err(e) => {
                tracing::error!(callout_id = %id, call_id = %call, error = %e, "could not record a machine");
                return nothing();
            }
        };
        let (callout, to) = match applied {
            Applied::Committed {
                callout, result, ..
            }
            | Applied::Unchanged {
                callout, result, ..
            } => (callout, result),
            Applied::Missing => return nothing(),
        };
        if to == ToMachine::Nothing {
            return nothing();
        }
        let voice = self.voice_of(&callout, call).await;
        let text = Phrases::of(voice.language).voicemail(&callout.name);
        let mut verbs = vec![Verb::pause(AFTER_BEEP_S)];
        verbs.extend(render::closing_dialplan(&text, voice).verbs);
        dialplan_json(&Dialplan::new(verbs))
    }

    /// The voice a call speaks in: the contact's language through the
    /// template's translations, or the assistant's voice.
    async fn voice_of(&self, callout: &Callout, call: CallId) -> Voice {
        let language = callout
            .attempt(call)
            .and_then(|a| callout.contacts[a.contact].language);
        match &callout.script {
            Script::Template { name } => match self.templates.get(name) {
                Some(t) => t.variant(language).1,
                None => dialog::voice(None, language),
            },
            Script::Assistant { id } => {
                let resolved = self.assistants.resolve(*id).await.ok().flatten();
                dialog::voice(resolved.as_deref(), language)
            }
        }
    }
}
