//! API key authentication for the dispatcher and admin APIs.
//!
//! `Authorization: Bearer <token>`; tokens from `API_KEYS` with a role each. A
//! presented token is hashed and compared to every configured token's hash in
//! constant time (no early exit, no length leak). No key → 401; a key without the
//! role → 403. In the sandbox without `API_KEYS` on loopback, everyone is admin.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::Role;

/// Where the extractors find the configured keys. A trait rather than the app's
/// state type, so that the state (which holds a [`KeyRing`]) imports this module
/// and not the other way round.
pub trait HasKeyRing {
    fn key_ring(&self) -> &KeyRing;
}

/// Configured tokens, as hashes.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<([u8; 32], Role)>,
    open: bool,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl KeyRing {
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            keys: config
                .api_keys
                .iter()
                .map(|k| (hash(k.token.expose()), k.role))
                .collect(),
            open: config.auth_disabled(),
        }
    }

    /// True in the open sandbox: no keys, everyone is admin (see `http::guard`).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The role of a presented token, if any. Checks every key every time.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.check(token).map(|c| c.role)
    }

    /// The caller a presented token authenticates, if any. Checks every key every time.
    fn check(&self, token: &str) -> Option<Caller> {
        let presented = hash(token);
        let mut found: Option<Role> = None;
        for (h, role) in &self.keys {
            if bool::from(h.ct_eq(&presented)) {
                found = Some(found.map_or(*role, |f| f.max(*role)));
            }
        }
        found.map(|role| Caller {
            role,
            key: KeyFingerprint::of_hash(&presented),
        })
    }
}

/// Which API key made a request, for the audit trail and the idempotency
/// scope: `key-` and the first 8 hex digits of the SHA-256 of its token (what
/// `ivr-gateway`'s operators can compute with `printf %s "$TOKEN" | sha256sum`),
/// never the token. `open` in the open sandbox, where no key is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFingerprint([u8; 12]);

impl KeyFingerprint {
    /// The fingerprint of the open sandbox's anonymous caller.
    pub const OPEN: Self = Self(*b"open\0\0\0\0\0\0\0\0");

    fn of_hash(h: &[u8; 32]) -> Self {
        let mut out = *b"key-00000000";
        out[4..].copy_from_slice(hex::encode(&h[..4]).as_bytes());
        Self(out)
    }

    /// The fingerprint of a token (as the key would be shown).
    pub fn of_token(token: &str) -> Self {
        Self::of_hash(&hash(token))
    }

    pub fn as_str(&self) -> &str {
        let end = self.0.iter().position(|b| *b == 0).unwrap_or(self.0.len());
        std::str::from_utf8(&self.0[..end]).unwrap_or("key-?")
    }
}

impl std::fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller, authenticated: its role and which key it used. Use
/// [`Dispatcher`] or [`Admin`] in handlers.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub role: Role,
    pub key: KeyFingerprint,
}

fn authenticate(parts: &Parts, keys: &KeyRing, needed: Role) -> Result<Caller, ApiError> {
    if keys.open {
        return Ok(Caller {
            role: Role::Admin,
            key: KeyFingerprint::OPEN,
        });
    }
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(token) = header.and_then(|h| {
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
    }) else {
        return Err(ApiError::unauthorized(
            "an API key is required: Authorization: Bearer <token>",
        ));
    };
    match keys.check(token.trim()) {
        None => Err(ApiError::unauthorized("the API key is not valid")),
        Some(caller) if caller.role < needed => Err(ApiError::forbidden(format!(
            "this needs the {} role",
            needed.as_str()
        ))),
        Some(caller) => Ok(caller),
    }
}

/// A caller with at least the dispatcher role.
#[derive(Debug, Clone, Copy)]
pub struct Dispatcher(pub Caller);

/// A caller with the admin role.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub Caller);

impl<S: HasKeyRing + Send + Sync> FromRequestParts<S> for Dispatcher {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts, state.key_ring(), Role::Dispatcher).map(Dispatcher)
    }
}

impl<S: HasKeyRing + Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts, state.key_ring(), Role::Admin).map(Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_their_role_and_admin_wins_a_tie() {
        let ring = KeyRing {
            keys: vec![
                (hash("dispatch-token-123456"), Role::Dispatcher),
                (hash("admin-token-1234567"), Role::Admin),
            ],
            open: false,
        };
        assert_eq!(
            ring.role_of("dispatch-token-123456"),
            Some(Role::Dispatcher)
        );
        assert_eq!(ring.role_of("admin-token-1234567"), Some(Role::Admin));
        assert_eq!(ring.role_of("admin-token-123456"), None);
        assert_eq!(ring.role_of(""), None);
        assert!(Role::Admin > Role::Dispatcher);
    }
}
