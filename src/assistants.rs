//! The assistants registry as the rest of the gateway uses it: find an assistant
//! by id or name and get its decrypted Voiceflow credentials.
//!
//! Decrypted keys are cached in memory for a short time (so a busy call does not
//! decrypt on every key press) and never leave this module except inside
//! [`VoiceflowCredentials`], whose `Debug` hides the key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::{Assistant, AssistantId};
use crate::security::{CryptoError, Signer};
use crate::store::{Store, StoreError};
use crate::voiceflow::client::VoiceflowCredentials;

/// How long a decrypted assistant stays cached. Short, so a rotated key or
/// changed settings take effect quickly on every replica.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// An assistant with its usable credentials.
#[derive(Debug, Clone)]
pub struct ResolvedAssistant {
    pub assistant: Assistant,
    pub credentials: VoiceflowCredentials,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("assistant {0}: {1}")]
    Key(AssistantId, #[source] CryptoError),
}

#[derive(Clone)]
pub struct Assistants {
    store: Store,
    signer: Signer,
    cache: Arc<Mutex<HashMap<AssistantId, (Instant, ResolvedAssistant)>>>,
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

    /// The assistant with decrypted credentials (cached briefly).
    pub async fn resolve(
        &self,
        id: AssistantId,
    ) -> Result<Option<ResolvedAssistant>, ResolveError> {
        if let Some((at, hit)) = self.lock().get(&id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some(hit.clone()));
        }
        let Some(assistant) = self.store.assistant(id).await? else {
            self.forget(id);
            return Ok(None);
        };
        let key = self
            .signer
            .decrypt_key(id, &assistant.encrypted_key)
            .map_err(|e| ResolveError::Key(id, e))?;
        let resolved = ResolvedAssistant {
            credentials: VoiceflowCredentials {
                api_key: key,
                version: assistant.version.clone(),
            },
            assistant,
        };
        self.lock().insert(id, (Instant::now(), resolved.clone()));
        Ok(Some(resolved))
    }

    /// Drops a cached entry (after an update or deletion on this replica).
    pub fn forget(&self, id: AssistantId) {
        self.lock().remove(&id);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<AssistantId, (Instant, ResolvedAssistant)>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
