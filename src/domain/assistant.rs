//! A registered Voiceflow assistant. The API key is only ever held encrypted
//! (`encrypted_key`); decrypting it is the engine's job (`crate::security`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AssistantId, E164, Gender, Language, Timestamp};

/// Per-assistant settings that shape how its turns are rendered and read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistantSettings {
    /// Text-to-speech language (one of Routee's 14).
    pub language: Language,
    /// Default voice gender when a trace names no known voice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
    /// Keys mapped to Voiceflow intents, e.g. `{"1": "accept"}`.
    #[serde(default)]
    pub keypad: BTreeMap<String, String>,
    /// Custom action names that mean "accepted" / "rejected".
    pub accept_actions: Vec<String>,
    pub reject_actions: Vec<String>,
    /// Save each call's conversation to Voiceflow transcripts.
    #[serde(default)]
    pub save_transcripts: bool,
    /// The only numbers a `transfer` may dial; none by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfer_targets: Vec<E164>,
    /// Turns use Voiceflow's streaming interact (v2, Server-Sent Events): at
    /// the deadline the traces received so far are answered. Needs the project id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub streaming: bool,
}

impl Default for AssistantSettings {
    fn default() -> Self {
        Self {
            language: Language::EnUs,
            gender: None,
            keypad: BTreeMap::new(),
            accept_actions: vec!["accept".into()],
            reject_actions: vec!["reject".into()],
            save_transcripts: false,
            transfer_targets: Vec::new(),
            streaming: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assistant {
    pub id: AssistantId,
    pub name: String,
    /// The version as registered: `production`, `development` or a version id.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    /// The resolved version id (transcripts need a real id, not an alias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub settings: AssistantSettings,
    /// The Dialog Manager API key, encrypted with a key derived from `GATEWAY_SECRET`.
    pub encrypted_key: String,
    /// The key's last four characters, so operators can tell keys apart.
    pub key_hint: String,
}
