//! The public representation of a callout: what `GET /v1/callouts/{id}` answers
//! and what `notify_url` receives. Timestamps become RFC 3339 strings here (they
//! are stored as milliseconds).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::{Callout, Event, Outcome, Policy, Script, Timestamp};

#[derive(Debug, Clone, Serialize)]
pub struct CalloutView {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    /// The template name, when the conversation comes from a dialplan template.
    pub dialplan: Option<String>,
    /// The assistant id, when it comes from a Voiceflow assistant.
    pub assistant: Option<String>,
    pub variables: Map<String, Value>,
    pub policy: Policy,
    pub notify_url: Option<String>,
    pub created_at: String,
    pub ended_at: Option<String>,
    /// When the next call is due, while one is scheduled.
    pub next_call_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub accepted_by: Option<AcceptedBy>,
    pub contacts: Vec<ContactView>,
    pub attempts: Vec<AttemptView>,
    /// The timeline; omitted in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AcceptedBy {
    pub contact: usize,
    pub name: String,
    pub phone: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactView {
    pub name: String,
    pub phone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Calls made to this contact so far.
    pub attempts: u32,
    /// Outcome of the latest finished call.
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub contact: usize,
    pub attempt: u32,
    pub call_id: String,
    pub status: &'static str,
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<crate::domain::Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub started_at: String,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
}

fn ts(t: Timestamp) -> String {
    t.rfc3339()
}

impl CalloutView {
    pub fn build(c: &Callout, events: Option<&[Event]>) -> Self {
        let contacts = c
            .contacts
            .iter()
            .enumerate()
            .map(|(i, contact)| ContactView {
                name: contact.name.clone(),
                phone: contact.phone.to_string(),
                language: contact.language.map(|l| l.code().to_owned()),
                attempts: c.attempts_for(i),
                outcome: c
                    .attempts
                    .iter()
                    .rev()
                    .filter(|a| a.contact == i)
                    .find_map(|a| a.outcome),
            })
            .collect();
        let attempts = c
            .attempts
            .iter()
            .map(|a| AttemptView {
                contact: a.contact,
                attempt: a.number,
                call_id: a.call_id.to_string(),
                status: a.state.name(),
                outcome: a.outcome,
                decision: a.decision,
                reason: a.reason.clone(),
                started_at: ts(a.created_at),
                answered_at: a.answered_at.map(ts),
                ended_at: a.ended_at.map(ts),
            })
            .collect();
        let (dialplan, assistant) = match &c.script {
            Script::Template { name } => (Some(name.clone()), None),
            Script::Assistant { id } => (None, Some(id.to_string())),
        };
        CalloutView {
            id: c.id.to_string(),
            name: c.name.clone(),
            status: c.status.as_str(),
            dialplan,
            assistant,
            variables: c.variables.clone(),
            policy: c.policy,
            notify_url: c.notify_url.clone(),
            created_at: ts(c.created_at),
            ended_at: c.ended_at.map(ts),
            next_call_at: match c.step {
                crate::domain::Step::Dial { at, .. } if !c.status.is_final() => Some(ts(at)),
                _ => None,
            },
            failure: c.failure.clone(),
            accepted_by: c.accepted_by.and_then(|i| {
                c.contacts.get(i).map(|p| AcceptedBy {
                    contact: i,
                    name: p.name.clone(),
                    phone: p.phone.to_string(),
                })
            }),
            contacts,
            attempts,
            events: events.map(|evs| evs.iter().map(event_view).collect()),
        }
    }
}

/// An event with its times as RFC 3339 strings.
pub fn event_view(e: &Event) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for key in ["at", "due", "retry_at"] {
            if let Some(Value::Number(n)) = m.get(key)
                && let Some(ms) = n.as_i64()
            {
                m.insert(key.to_owned(), Value::String(Timestamp(ms).rfc3339()));
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CalloutId, Contact, EventKind, NewCallout};

    #[test]
    fn the_view_has_the_contracts_fields() {
        let input = NewCallout {
            name: "Ticket 4711".into(),
            script: Script::Template {
                name: "ticket-escalation".into(),
            },
            variables: Map::new(),
            contacts: vec![Contact {
                name: "Alice".into(),
                phone: "+306900000001".parse().unwrap(),
                language: None,
            }],
            policy: Policy::default(),
            notify_url: None,
        };
        let (c, events) = Callout::create(CalloutId::new(), input, Timestamp(0));
        let v = serde_json::to_value(CalloutView::build(&c, Some(&events))).unwrap();
        for key in [
            "id",
            "status",
            "accepted_by",
            "contacts",
            "attempts",
            "events",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["status"], "calling");
        assert_eq!(v["contacts"][0]["phone"], "+306900000001");
        assert_eq!(v["events"][0]["kind"], "callout_created");
        assert_eq!(v["events"][0]["at"], "1970-01-01T00:00:00.000Z");
        let e = event_view(&Event::new(
            Timestamp(1000),
            EventKind::CallScheduled {
                due: Timestamp(2000),
            },
        ));
        assert_eq!(e["due"], "1970-01-01T00:00:02.000Z");
    }
}
