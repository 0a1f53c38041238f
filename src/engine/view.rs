//! The public representation of a callout: what `GET /v1/callouts/{id}` answers
//! and what `notify_url` receives. Timestamps become RFC 3339 strings here (they
//! are stored as milliseconds).
//!
//! The types derive their schema for `GET /openapi.json` (`http::openapi`); a
//! field the types cannot describe (a status spelled as a string, the policy's
//! bounds, the timeline's loose events) names the schema it has.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};

use crate::domain::policy::BOUNDS;
use crate::domain::{Callout, CalloutStatus, Event, Outcome, Policy, Script, Timestamp};

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Callout)]
pub struct CalloutView {
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub id: String,
    pub name: String,
    #[schema(value_type = CalloutStatus)]
    pub status: &'static str,
    /// The template name, when the conversation comes from a dialplan template.
    #[schema(required = true)]
    pub dialplan: Option<String>,
    /// The assistant id, when it comes from a Voiceflow assistant.
    #[schema(required = true)]
    pub assistant: Option<String>,
    #[schema(schema_with = variables_schema)]
    pub variables: Map<String, Value>,
    #[schema(value_type = PolicySchema)]
    pub policy: Policy,
    #[schema(required = true)]
    pub notify_url: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime, required = true)]
    pub ended_at: Option<String>,
    /// When the next call is due, while one is scheduled.
    #[schema(format = DateTime, required = true)]
    pub next_call_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub failure: Option<String>,
    #[schema(required = true)]
    pub accepted_by: Option<AcceptedBy>,
    /// Everyone who accepted, in order (`policy.needed` people fill the callout;
    /// an exhausted callout lists those it found).
    pub acceptors: Vec<AcceptedBy>,
    /// The round being called, from 1 (`policy.rounds`).
    pub round: u32,
    pub contacts: Vec<ContactView>,
    pub attempts: Vec<AttemptView>,
    /// The timeline; omitted in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<EventSchema>)]
    pub events: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AcceptedBy {
    pub contact: usize,
    pub name: String,
    pub phone: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Contact)]
pub struct ContactView {
    pub name: String,
    pub phone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub language: Option<String>,
    /// Calls made to this contact so far.
    pub attempts: u32,
    /// Outcome of the latest finished call.
    #[schema(required = true)]
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Attempt)]
pub struct AttemptView {
    pub contact: usize,
    #[schema(minimum = 1)]
    pub attempt: u32,
    pub call_id: String,
    /// The call's state, as the carrier last reported it (`not_placed`: the
    /// carrier never created it).
    #[schema(schema_with = call_state_schema)]
    pub status: &'static str,
    #[schema(required = true)]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub decision: Option<crate::domain::Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime, required = true)]
    pub answered_at: Option<String>,
    #[schema(format = DateTime, required = true)]
    pub ended_at: Option<String>,
    /// The transfer a `DIAL` of this call opened, by its last status
    /// (`dialing`, `ringing`, `answered`, `completed`, `busy`, `no_answer`,
    /// `failed`); absent without a transfer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub transfer: Option<String>,
}

/// One entry of the timeline; some kinds carry more fields (due, retry_at,
/// reason, status, keys, decision, outcome).
// As [`event_view`] writes it: the schema leaves the kinds' fields open.
#[derive(ToSchema)]
#[schema(as = Event)]
pub struct EventSchema {
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(schema_with = event_kind_schema)]
    pub kind: String,
    #[schema(nullable = false)]
    pub contact: Option<usize>,
    #[schema(nullable = false, minimum = 1)]
    pub attempt: Option<u32>,
    /// On `callout_created` and `callout_cancelled`: the API key that did it, as
    /// its fingerprint (`key-` and the first 8 hex digits of the SHA-256 of the
    /// token), or `open` in the open sandbox.
    #[schema(nullable = false, example = "key-1a2b3c4d")]
    pub by: Option<String>,
}

/// The policy the callout runs with: every field, each within [`BOUNDS`].
pub struct PolicySchema;

impl utoipa::PartialSchema for PolicySchema {
    fn schema() -> RefOr<Schema> {
        policy_schema(true).into()
    }
}

impl ToSchema for PolicySchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Policy")
    }
}

/// A policy's object: its fields bounded as [`BOUNDS`] says, all of them
/// `required` in an answer (a request may leave any out).
pub fn policy_schema(required: bool) -> Schema {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for (name, lo, hi) in BOUNDS {
        object = object.property(
            name,
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(lo))
                .maximum(Some(hi)),
        );
        if required {
            object = object.required(name);
        }
    }
    object = object.property(
        "voicemail_message",
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .description(Some(
                "Whether an answering machine hears the voicemail message (default true).",
            )),
    );
    if required {
        object = object.required("voicemail_message");
    }
    object.into()
}

/// A variable's value: a string (at most `max_chars` long, when given), a
/// number or a boolean.
pub fn scalar_schema(max_chars: Option<usize>) -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(max_chars),
        )
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .into()
}

/// A callout's variables: names to scalars.
fn variables_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(scalar_schema(None)))
        .into()
}

fn call_state_schema() -> Schema {
    string_enum(&[
        "dialing",
        "queued",
        "initiated",
        "ringing",
        "in_progress",
        "completed",
        "busy",
        "no_answer",
        "failed",
        "not_placed",
    ])
}

fn event_kind_schema() -> Schema {
    string_enum(&[
        "callout_created",
        "call_scheduled",
        "call_placed",
        "placement_retry",
        "placement_unconfirmed",
        "carrier_unavailable",
        "call_status",
        "transfer",
        "keys_pressed",
        "decided",
        "attempt_ended",
        "contact_done",
        "round_started",
        "call_held",
        "hangup_requested",
        "conversation_fallback",
        "reconciled",
        "callout_accepted",
        "callout_exhausted",
        "callout_cancelled",
        "callout_failed",
        "notify_delivered",
        "notify_failed",
    ])
}

/// A string that is one of `values`.
pub fn string_enum(values: &[&str]) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .into()
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
                attempts: c.attempts.iter().filter(|a| a.contact == i).count() as u32,
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
                transfer: a.transfer.as_ref().map(|t| t.status.clone()),
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
            next_call_at: c.next_dial().map(ts),
            failure: c.failure.clone(),
            accepted_by: c.accepted_by.and_then(|i| accepted_by(c, i)),
            acceptors: c
                .acceptors
                .iter()
                .filter_map(|&i| accepted_by(c, i))
                .collect(),
            round: c.round + 1,
            contacts,
            attempts,
            events: events.map(|evs| evs.iter().map(event_view).collect()),
        }
    }
}

fn accepted_by(c: &Callout, i: usize) -> Option<AcceptedBy> {
    c.contacts.get(i).map(|p| AcceptedBy {
        contact: i,
        name: p.name.clone(),
        phone: p.phone.to_string(),
    })
}

/// An event with its times as RFC 3339 strings.
pub fn event_view(e: &Event) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for key in ["at", "due", "retry_at", "until"] {
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
