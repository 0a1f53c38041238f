//! The assistants registry: registered Voiceflow assistants, as the engine uses
//! them (find one by id or name, get its decrypted credentials) and as admins
//! manage them (register, update or rotate the key, delete).
//!
//! # Registration
//!
//! Nothing is stored until Voiceflow has accepted the key and version: a probe
//! of the runtime (key check and version alias resolution), then the version
//! export (project and version ids and the project name, reference §8). The
//! export is best-effort: Voiceflow needs `project_id` to export an alias, so
//! without it the assistant is registered without metadata, provided it has a
//! name and does not ask for transcripts (which need the real ids). A refused
//! key or version is the client's mistake (a field error); Voiceflow being down
//! or slow is not, and is reported as such.
//!
//! # Keys
//!
//! API keys are stored encrypted with a key derived from `GATEWAY_SECRET`
//! (`crate::security`), bound to the assistant id; only their last four
//! characters (`key_hint`) are ever shown. Decrypted keys are cached in memory
//! for [`CACHE_TTL`] (so a call does not decrypt on every key press) and never
//! leave this module except inside [`VoiceflowCredentials`], whose `Debug` hides
//! the key. A key that only decrypts with `GATEWAY_SECRET_PREVIOUS` is
//! re-encrypted with the current secret at startup ([`Assistants::reencrypt_all`])
//! and whenever it is used ([`Assistants::resolve`]), so the previous secret can
//! be retired.
//!
//! # Concurrent changes
//!
//! Every write of an existing assistant is a compare-and-set on its
//! `updated_at` ([`Store::replace_assistant`]), which every write moves forward:
//! an admin's update and a replica re-encrypting the key never undo each other.
//! A replica drops its cached copy when it changes an assistant; other replicas'
//! copies expire within [`CACHE_TTL`].
//!
//! The conversation tools (a test session of an assistant, without a call) are
//! beside the engine, in `engine::tools`: they run turns as calls do.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Secret;
use crate::dialplan::render::{ActionNames, Voice};
use crate::domain::{Assistant, AssistantId, AssistantSettings, E164, FieldError, Timestamp};
use crate::routee::{Gender, Language};
use crate::security::{CryptoError, Signer};
use crate::store::{Deleted, Replaced, Saved, Store, StoreError};
use crate::voiceflow::VoiceflowError;
use crate::voiceflow::client::{VersionInfo, VoiceflowClient, VoiceflowCredentials};

/// How long a decrypted assistant stays cached. Short, so a rotated key or
/// changed settings take effect quickly on every replica.
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// Compare-and-set attempts when re-encrypting a key races other writers.
const MAX_REENCRYPT_TRIES: usize = 3;

/// An assistant with its usable credentials.
#[derive(Debug, Clone)]
pub struct ResolvedAssistant {
    pub assistant: Assistant,
    pub credentials: VoiceflowCredentials,
}

impl ResolvedAssistant {
    /// How this assistant's custom actions are read. Calls and the
    /// conversation tools render with exactly these (and the gateway's own
    /// words in the call's language, `dialplan::phrases`).
    pub fn actions(&self) -> ActionNames {
        let s = &self.assistant.settings;
        ActionNames {
            accept: s.accept_actions.clone(),
            reject: s.reject_actions.clone(),
            transfer_targets: s.transfer_targets.clone(),
            ..ActionNames::default()
        }
    }

    /// The voice a callee hears: their own language when the call list gives
    /// one, else the assistant's; the assistant's default gender.
    pub fn voice(&self, contact_language: Option<Language>) -> Voice {
        let s = &self.assistant.settings;
        Voice {
            language: contact_language.unwrap_or(s.language),
            gender: s.gender,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("assistant {0}: {1}")]
    Key(AssistantId, #[source] CryptoError),
}

/// Settings an admin sets, each optional: a registration fills the others with
/// the defaults, an update keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub language: Option<Language>,
    /// `Some(None)` clears the default gender (Routee chooses).
    pub gender: Option<Option<Gender>>,
    pub keypad: Option<BTreeMap<String, String>>,
    pub accept_actions: Option<Vec<String>>,
    pub reject_actions: Option<Vec<String>>,
    pub save_transcripts: Option<bool>,
    pub transfer_targets: Option<Vec<E164>>,
    pub streaming: Option<bool>,
}

impl SettingsChange {
    pub fn is_empty(&self) -> bool {
        *self == SettingsChange::default()
    }

    fn apply(&self, s: &mut AssistantSettings) {
        if let Some(l) = self.language {
            s.language = l;
        }
        if let Some(g) = self.gender {
            s.gender = g;
        }
        if let Some(k) = &self.keypad {
            s.keypad.clone_from(k);
        }
        if let Some(a) = &self.accept_actions {
            s.accept_actions.clone_from(a);
        }
        if let Some(r) = &self.reject_actions {
            s.reject_actions.clone_from(r);
        }
        if let Some(t) = &self.transfer_targets {
            s.transfer_targets.clone_from(t);
        }
        if let Some(t) = self.save_transcripts {
            s.save_transcripts = t;
        }
        if let Some(t) = self.streaming {
            s.streaming = t;
        }
    }
}

/// A new assistant, parsed at the edge.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Defaults to the Voiceflow project's name.
    pub name: Option<String>,
    pub api_key: Secret<String>,
    /// `production`, `development` or a 24-hex version id.
    pub version: String,
    /// Lets Voiceflow export an alias version (its metadata).
    pub project_id: Option<String>,
    pub settings: SettingsChange,
}

/// Changes to an assistant, parsed at the edge. A new key, version or project id
/// is checked with Voiceflow like a registration.
#[derive(Debug, Clone, Default)]
pub struct AssistantUpdate {
    pub name: Option<String>,
    pub api_key: Option<Secret<String>>,
    pub version: Option<String>,
    pub project_id: Option<String>,
    pub settings: SettingsChange,
}

/// A registered or updated assistant, and what the admin should know about it.
#[derive(Debug, Clone)]
pub struct Registered {
    pub assistant: Assistant,
    /// E.g. why Voiceflow's metadata is missing.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Something in the request is wrong, Voiceflow's verdict included.
    #[error("invalid assistant: {}", list(.0))]
    Invalid(Vec<FieldError>),
    #[error("an assistant named {0:?} already exists")]
    NameTaken(String),
    #[error("no such assistant")]
    NotFound,
    #[error("{0} running callout(s) use this assistant")]
    InUse(u64),
    #[error("the assistant was changed by someone else meanwhile; read it again and retry")]
    Changed,
    /// Voiceflow could not give a verdict (unreachable, slow, 5xx, rate limit).
    #[error("Voiceflow could not check the key: {0}")]
    Voiceflow(#[source] VoiceflowError),
    /// The stored key cannot be decrypted (wrong `GATEWAY_SECRET`).
    #[error("the stored API key of assistant {0} is unusable: {1}")]
    StoredKey(AssistantId, #[source] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// True for a Voiceflow version id (24 hex digits, a Mongo ObjectID).
pub fn is_version_id(version: &str) -> bool {
    version.len() == 24 && version.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What Voiceflow says about a key and version, once it accepted them.
#[derive(Debug, Clone, Default)]
struct Metadata {
    project_id: Option<String>,
    project_name: Option<String>,
    version_id: Option<String>,
    /// Why the export could not be read, when it could not.
    unavailable: Option<String>,
}

/// Decrypted assistants by id, with when each was read.
type Cache = HashMap<AssistantId, (Instant, Arc<ResolvedAssistant>)>;

#[derive(Clone)]
pub struct Assistants {
    store: Store,
    signer: Signer,
    /// Shared (`Arc`): a key press borrows its assistant instead of copying it.
    cache: Arc<Mutex<Cache>>,
}

impl std::fmt::Debug for Assistants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assistants")
    }
}

impl Assistants {
    pub fn new(store: Store, signer: Signer) -> Self {
        Self {
            store,
            signer,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Finds an assistant by id, or by name when `key` is not an id.
    pub async fn find(&self, key: &str) -> Result<Option<Assistant>, StoreError> {
        if let Ok(id) = key.parse::<AssistantId>()
            && let Some(a) = self.store.assistant(id).await?
        {
            return Ok(Some(a));
        }
        self.store.assistant_by_name(key).await
    }

    /// The assistant with decrypted credentials (cached briefly). A key that
    /// only the previous secret decrypts is re-encrypted on the way.
    pub async fn resolve(
        &self,
        id: AssistantId,
    ) -> Result<Option<Arc<ResolvedAssistant>>, ResolveError> {
        if let Some((at, hit)) = self.lock().get(&id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some(Arc::clone(hit)));
        }
        let Some(mut assistant) = self.store.assistant(id).await? else {
            self.forget(id);
            return Ok(None);
        };
        let key = self
            .signer
            .decrypt_key(id, &assistant.encrypted_key)
            .map_err(|e| ResolveError::Key(id, e))?;
        if self.signer.needs_reencryption(id, &assistant.encrypted_key) {
            match self.reencrypt(assistant.clone(), &key).await {
                Ok(Some(fresh)) => assistant = fresh,
                Ok(None) => {}
                // The key still works with the previous secret: use it, retry next time.
                Err(e) => {
                    tracing::warn!(assistant_id = %id, error = %e, "could not re-encrypt a stored key")
                }
            }
        }
        let resolved = Arc::new(ResolvedAssistant {
            credentials: VoiceflowCredentials {
                api_key: key,
                version: assistant.version.clone(),
            },
            assistant,
        });
        self.lock()
            .insert(id, (Instant::now(), Arc::clone(&resolved)));
        Ok(Some(resolved))
    }

    /// Drops a cached entry (after an update or deletion on this replica).
    pub fn forget(&self, id: AssistantId) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new assistant once Voiceflow accepts its key and version.
    /// Nothing is stored on any error.
    pub async fn register(
        &self,
        voiceflow: &VoiceflowClient,
        new: Registration,
    ) -> Result<Registered, RegistryError> {
        if let Some(name) = &new.name {
            self.check_name_free(name, None).await?;
        }
        let creds = VoiceflowCredentials {
            api_key: new.api_key.clone(),
            version: new.version.clone(),
        };
        let meta = check_with_voiceflow(voiceflow, &creds, new.project_id.as_deref()).await?;
        let from_project = meta
            .project_name
            .as_deref()
            .map(name_from_project)
            .filter(|n| !n.is_empty());
        let name = match (&new.name, from_project) {
            (Some(given), _) => given.clone(),
            (None, Some(name)) => {
                self.check_name_free(&name, None).await?;
                name
            }
            (None, None) => {
                return Err(RegistryError::Invalid(vec![FieldError::new(
                    "name",
                    format!(
                        "required: Voiceflow's project metadata is unavailable ({}), so the \
                         project's name is unknown; give a name (or project_id, so the name \
                         can be read)",
                        meta.unavailable.as_deref().unwrap_or("no project name")
                    ),
                )]));
            }
        };
        let mut settings = AssistantSettings::default();
        new.settings.apply(&mut settings);
        check_transcripts(&settings, &meta)?;
        let id = AssistantId::new();
        let now = Timestamp::now();
        let assistant = Assistant {
            id,
            name,
            version: new.version,
            project_id: meta.project_id.clone(),
            project_name: meta.project_name.clone(),
            version_id: meta.version_id.clone(),
            created_at: now,
            updated_at: now,
            settings,
            encrypted_key: self.signer.encrypt_key(id, new.api_key.expose()),
            key_hint: key_hint(new.api_key.expose()),
        };
        match self.store.save_assistant(&assistant).await? {
            Saved::Yes => {}
            Saved::NameTaken => return Err(RegistryError::NameTaken(assistant.name)),
        }
        tracing::info!(assistant_id = %id, name = %assistant.name, version = %assistant.version, "assistant registered");
        Ok(Registered {
            warnings: warnings(&meta, &assistant),
            assistant,
        })
    }

    /// Changes an assistant without changing its id: a new key, version or
    /// project id is checked with Voiceflow first. Nothing changes on any error.
    pub async fn update(
        &self,
        voiceflow: &VoiceflowClient,
        id: AssistantId,
        change: AssistantUpdate,
    ) -> Result<Registered, RegistryError> {
        let current = self
            .store
            .assistant(id)
            .await?
            .ok_or(RegistryError::NotFound)?;
        if let Some(name) = &change.name {
            self.check_name_free(name, Some(id)).await?;
        }
        let mut next = current.clone();
        let mut warnings_out = Vec::new();
        let recheck =
            change.api_key.is_some() || change.version.is_some() || change.project_id.is_some();
        let mut meta = Metadata {
            project_id: current.project_id.clone(),
            project_name: current.project_name.clone(),
            version_id: current.version_id.clone(),
            unavailable: None,
        };
        if recheck {
            let key = match &change.api_key {
                Some(k) => k.clone(),
                None => self
                    .signer
                    .decrypt_key(id, &current.encrypted_key)
                    .map_err(|e| RegistryError::StoredKey(id, e))?,
            };
            let version = change
                .version
                .clone()
                .unwrap_or_else(|| current.version.clone());
            let creds = VoiceflowCredentials {
                api_key: key.clone(),
                version: version.clone(),
            };
            // A rotated key of the same project still exports an alias with the
            // project id already known.
            let project_id = change.project_id.clone().or(current.project_id.clone());
            meta = check_with_voiceflow(voiceflow, &creds, project_id.as_deref()).await?;
            next.version = version;
            next.encrypted_key = self.signer.encrypt_key(id, key.expose());
            next.key_hint = key_hint(key.expose());
            next.project_id = meta.project_id.clone();
            next.version_id = meta.version_id.clone();
            // A name read before stays useful even if the export failed now.
            if meta.project_name.is_some() {
                next.project_name = meta.project_name.clone();
            }
            warnings_out = warnings(&meta, &next);
        }
        if let Some(name) = change.name {
            next.name = name;
        }
        change.settings.apply(&mut next.settings);
        check_transcripts(&next.settings, &meta)?;
        next.updated_at = later_than(current.updated_at);
        self.replace(&next, current.updated_at).await?;
        tracing::info!(assistant_id = %id, name = %next.name, key_changed = change.api_key.is_some(), "assistant updated");
        Ok(Registered {
            assistant: next,
            warnings: warnings_out,
        })
    }

    /// Deletes an assistant unless running callouts use it.
    pub async fn delete(&self, id: AssistantId) -> Result<(), RegistryError> {
        let result = self.store.delete_assistant(id).await?;
        self.forget(id);
        match result {
            Deleted::Yes => {
                tracing::info!(assistant_id = %id, "assistant deleted");
                Ok(())
            }
            Deleted::NotFound => Err(RegistryError::NotFound),
            Deleted::InUse(n) => Err(RegistryError::InUse(n)),
        }
    }

    /// Registers the assistant `name` with this key and version, or refreshes
    /// the one already registered under that name (same id, settings kept; the
    /// key and version are checked again). `VOICEFLOW_API_KEY` and the sandbox
    /// use this at startup.
    pub async fn ensure(
        &self,
        voiceflow: &VoiceflowClient,
        name: &str,
        api_key: Secret<String>,
        version: &str,
        settings_if_new: SettingsChange,
    ) -> Result<Registered, RegistryError> {
        match self.store.assistant_by_name(name).await? {
            Some(existing) => {
                self.update(
                    voiceflow,
                    existing.id,
                    AssistantUpdate {
                        api_key: Some(api_key),
                        version: Some(version.to_owned()),
                        ..AssistantUpdate::default()
                    },
                )
                .await
            }
            None => {
                self.register(
                    voiceflow,
                    Registration {
                        name: Some(name.to_owned()),
                        api_key,
                        version: version.to_owned(),
                        project_id: None,
                        settings: settings_if_new,
                    },
                )
                .await
            }
        }
    }

    /// How many stored keys are under a secret other than the current
    /// `GATEWAY_SECRET` (`ivr_secret_old_key_items`, refreshed periodically:
    /// a replica still on the old secret may store keys under it mid-roll).
    pub async fn old_key_items(&self) -> Result<usize, StoreError> {
        Ok(self
            .store
            .assistants()
            .await?
            .iter()
            .filter(|a| self.signer.is_under_old_key(a.id, &a.encrypted_key))
            .count())
    }

    /// Re-encrypts, with the current `GATEWAY_SECRET`, every stored key that only
    /// `GATEWAY_SECRET_PREVIOUS` decrypts. Returns how many were re-encrypted;
    /// keys that decrypt with neither are logged and left alone.
    pub async fn reencrypt_all(&self) -> Result<usize, StoreError> {
        let mut done = 0;
        let mut old = 0u32;
        for assistant in self.store.assistants().await? {
            if self
                .signer
                .is_under_old_key(assistant.id, &assistant.encrypted_key)
                && !self
                    .signer
                    .needs_reencryption(assistant.id, &assistant.encrypted_key)
            {
                // Under GATEWAY_SECRET_NEXT: a switched replica's; left as it is.
                old += 1;
            }
            let id = assistant.id;
            if !self.signer.needs_reencryption(id, &assistant.encrypted_key) {
                if let Err(e) = self.signer.decrypt_key(id, &assistant.encrypted_key) {
                    tracing::error!(assistant_id = %id, name = %assistant.name, error = %e, "a stored Voiceflow key cannot be decrypted: register the key again (PATCH /v1/assistants/{id})");
                }
                continue;
            }
            let Ok(key) = self.signer.decrypt_key(id, &assistant.encrypted_key) else {
                continue;
            };
            // None: gone, or re-encrypted meanwhile by another replica.
            if self.reencrypt(assistant, &key).await?.is_some() {
                done += 1;
            }
        }
        metrics::gauge!(crate::telemetry::metrics::SECRET_OLD_KEY_ITEMS).set(f64::from(old));
        Ok(done)
    }

    /// Stores `assistant` with its key encrypted by the current secret, unless
    /// someone else changed it meanwhile (then re-reads and tries again).
    /// Returns the stored assistant, `None` when it is gone or already current.
    async fn reencrypt(
        &self,
        mut assistant: Assistant,
        key: &Secret<String>,
    ) -> Result<Option<Assistant>, StoreError> {
        for _ in 0..MAX_REENCRYPT_TRIES {
            let read_at = assistant.updated_at;
            let mut next = assistant.clone();
            next.encrypted_key = self.signer.encrypt_key(next.id, key.expose());
            next.updated_at = later_than(read_at);
            match self.store.replace_assistant(&next, read_at).await? {
                Replaced::Yes => {
                    tracing::info!(assistant_id = %next.id, "stored Voiceflow key re-encrypted with the current GATEWAY_SECRET");
                    self.forget(next.id);
                    return Ok(Some(next));
                }
                Replaced::NotFound => return Ok(None),
                // The name cannot clash: it did not change.
                Replaced::NameTaken | Replaced::Changed => {
                    let Some(fresh) = self.store.assistant(assistant.id).await? else {
                        return Ok(None);
                    };
                    if !self
                        .signer
                        .needs_reencryption(fresh.id, &fresh.encrypted_key)
                    {
                        return Ok(None);
                    }
                    assistant = fresh;
                }
            }
        }
        Ok(None)
    }

    async fn replace(&self, next: &Assistant, read_at: Timestamp) -> Result<(), RegistryError> {
        let result = self.store.replace_assistant(next, read_at).await?;
        self.forget(next.id);
        match result {
            Replaced::Yes => Ok(()),
            Replaced::NameTaken => Err(RegistryError::NameTaken(next.name.clone())),
            Replaced::Changed => Err(RegistryError::Changed),
            Replaced::NotFound => Err(RegistryError::NotFound),
        }
    }

    /// Fails early (before asking Voiceflow) when another assistant has `name`.
    async fn check_name_free(
        &self,
        name: &str,
        this: Option<AssistantId>,
    ) -> Result<(), RegistryError> {
        match self.store.assistant_by_name(name).await? {
            Some(other) if Some(other.id) != this => Err(RegistryError::NameTaken(name.to_owned())),
            _ => Ok(()),
        }
    }
}

/// Asks Voiceflow whether the key and version work (the probe), then for the
/// version's metadata (the export, best-effort). Only the probe's verdict can
/// refuse a registration; a failed export is recorded as missing metadata.
async fn check_with_voiceflow(
    voiceflow: &VoiceflowClient,
    creds: &VoiceflowCredentials,
    project_id: Option<&str>,
) -> Result<Metadata, RegistryError> {
    voiceflow
        .probe(creds)
        .await
        .map_err(|e| verdict(e, &creds.version))?;
    match voiceflow.export_version(creds, project_id).await {
        Ok(info) => metadata_from(info, project_id),
        // Voiceflow is there but did not answer: try again later, store nothing.
        Err(e) if e.retryable() => Err(RegistryError::Voiceflow(e)),
        Err(e) => {
            let hint = if project_id.is_none() && !is_version_id(&creds.version) {
                "; exporting a version alias needs project_id"
            } else {
                ""
            };
            Ok(Metadata {
                project_id: project_id.map(str::to_owned),
                project_name: None,
                version_id: is_version_id(&creds.version).then(|| creds.version.clone()),
                unavailable: Some(format!("{e}{hint}")),
            })
        }
    }
}

fn metadata_from(info: VersionInfo, project_id: Option<&str>) -> Result<Metadata, RegistryError> {
    if let Some(given) = project_id
        && given != info.project_id
    {
        return Err(RegistryError::Invalid(vec![FieldError::new(
            "project_id",
            format!(
                "the key and version belong to Voiceflow project {}, not {given}",
                info.project_id
            ),
        )]));
    }
    Ok(Metadata {
        project_id: Some(info.project_id),
        project_name: info.project_name,
        version_id: Some(info.version_id),
        unavailable: None,
    })
}

/// Voiceflow's verdict on a key and version, as field errors when it is the
/// request's fault.
fn verdict(e: VoiceflowError, version: &str) -> RegistryError {
    let field = |field: &str, message: String| {
        RegistryError::Invalid(vec![FieldError::new(field, message)])
    };
    match e {
        VoiceflowError::Unauthorized => field("api_key", "Voiceflow refused the key".into()),
        VoiceflowError::VersionNotFound { message } => field(
            "version",
            format!("Voiceflow cannot use version {version:?}: {message}"),
        ),
        VoiceflowError::Invalid { what, reason } => {
            let name = if what.contains("key") {
                "api_key"
            } else {
                "version"
            };
            field(name, reason)
        }
        // A 408 is Voiceflow timing out, not a verdict on the key and version.
        VoiceflowError::Upstream { status, message }
            if (400..500).contains(&status) && status != 408 =>
        {
            let name = if status == 403 { "api_key" } else { "version" };
            field(
                name,
                format!("Voiceflow refused the key and version (HTTP {status}: {message})"),
            )
        }
        other => RegistryError::Voiceflow(other),
    }
}

fn check_transcripts(settings: &AssistantSettings, meta: &Metadata) -> Result<(), RegistryError> {
    if settings.streaming && meta.project_id.is_none() {
        return Err(RegistryError::Invalid(vec![FieldError::new(
            "streaming",
            "needs the Voiceflow project id (the streaming endpoint names it): give project_id, \
             or register a 24-hex version id",
        )]));
    }
    if settings.save_transcripts && (meta.project_id.is_none() || meta.version_id.is_none()) {
        return Err(RegistryError::Invalid(vec![FieldError::new(
            "save_transcripts",
            format!(
                "needs the Voiceflow project and version ids, which are unknown ({}); register \
                 a 24-hex version id, or give project_id with a version alias",
                meta.unavailable
                    .as_deref()
                    .unwrap_or("Voiceflow's export did not name them")
            ),
        )]));
    }
    Ok(())
}

fn warnings(meta: &Metadata, assistant: &Assistant) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(why) = &meta.unavailable {
        out.push(format!(
            "Voiceflow's project metadata is unavailable: {why}"
        ));
        if assistant.version_id.is_none() || assistant.project_id.is_none() {
            out.push(
                "transcripts cannot be saved until the project and version ids are known".into(),
            );
        }
    }
    out
}

/// A project name made fit to be an assistant name.
fn name_from_project(project: &str) -> String {
    let clean: String = project
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clean.trim().chars().take(100).collect()
}

/// The last four characters of a key, so operators can tell keys apart.
pub fn key_hint(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// `updated_at` for a new write: now, but always after the version it replaces
/// (it is the compare-and-set token, so two writes must never share one).
fn later_than(previous: Timestamp) -> Timestamp {
    Timestamp::now().max(previous.plus(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_hint_is_the_last_four_characters_only() {
        assert_eq!(key_hint("VF.DM.abcdef.secret-1234"), "1234");
        assert_eq!(key_hint("abc"), "abc");
    }

    #[test]
    fn version_ids_are_24_hex_digits_and_aliases_are_not() {
        assert!(is_version_id("0123456789abcdef01234567"));
        assert!(!is_version_id("production"));
        assert!(!is_version_id("0123456789abcdef0123456"));
        assert!(!is_version_id("0123456789abcdef0123456z"));
    }

    #[test]
    fn a_settings_change_keeps_what_it_does_not_mention() {
        let mut s = AssistantSettings {
            gender: Some(Gender::Female),
            save_transcripts: true,
            ..AssistantSettings::default()
        };
        SettingsChange {
            language: Some(Language::ElGr),
            keypad: Some(BTreeMap::from([("1".into(), "accept".into())])),
            ..SettingsChange::default()
        }
        .apply(&mut s);
        assert_eq!(s.language, Language::ElGr);
        assert_eq!(s.gender, Some(Gender::Female));
        assert!(s.save_transcripts);
        assert_eq!(s.keypad["1"], "accept");
        SettingsChange {
            gender: Some(None),
            ..SettingsChange::default()
        }
        .apply(&mut s);
        assert_eq!(s.gender, None);
    }

    #[test]
    fn voiceflows_refusals_name_the_field_and_outages_do_not() {
        let fields = |e: RegistryError| match e {
            RegistryError::Invalid(f) => f.into_iter().map(|f| f.field).collect::<Vec<_>>(),
            other => panic!("not a field error: {other}"),
        };
        assert_eq!(
            fields(verdict(VoiceflowError::Unauthorized, "production")),
            ["api_key"]
        );
        assert_eq!(
            fields(verdict(
                VoiceflowError::VersionNotFound {
                    message: "not published".into()
                },
                "production"
            )),
            ["version"]
        );
        assert!(matches!(
            verdict(
                VoiceflowError::Upstream {
                    status: 408,
                    message: "timeout".into()
                },
                "production"
            ),
            RegistryError::Voiceflow(_)
        ));
        assert!(matches!(
            verdict(
                VoiceflowError::Upstream {
                    status: 503,
                    message: "down".into()
                },
                "production"
            ),
            RegistryError::Voiceflow(_)
        ));
    }

    #[test]
    fn every_write_moves_updated_at_forward() {
        let future = Timestamp::now().plus_secs(60);
        assert!(later_than(future) > future);
        let past = Timestamp(0);
        assert!(later_than(past) > past);
    }

    #[test]
    fn project_names_become_usable_assistant_names() {
        assert_eq!(name_from_project("  Ticket\nflow "), "Ticket flow");
        assert_eq!(name_from_project(&"x".repeat(300)).len(), 100);
    }
}
