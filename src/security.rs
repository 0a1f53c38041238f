//! Secrets at work: signing webhook URLs, signing notifications, and encrypting
//! stored Voiceflow API keys. Every key is derived from `GATEWAY_SECRET` with its
//! own label, so one purpose's key never serves another.
//!
//! # Rotation
//!
//! Every secret has a key id (`kid`: 8 hex digits derived from it), written in
//! every webhook signature (`v1.<kid>.<expiry>.<mac>`) and every stored
//! ciphertext (`v1:<kid>:<base64>`). Verification and decryption take the key
//! the id names, among every configured one: `GATEWAY_SECRET` (the only one
//! that signs and encrypts), `GATEWAY_SECRET_PREVIOUS` (being retired) and
//! `GATEWAY_SECRET_NEXT` (announced before it becomes current). Only what is
//! under the previous key is re-encrypted, never what is under the next one,
//! so during a rolling restart replicas on the old and the new secret accept
//! each other's URLs and never re-encrypt a key back and forth. The procedure
//! (README, deploy/README.md): 1. every replica gets `GATEWAY_SECRET_NEXT=new`;
//! 2. every replica gets `GATEWAY_SECRET=new`, `GATEWAY_SECRET_PREVIOUS=old`
//! (and no NEXT); 3. once `ivr_secret_old_key_items` is 0 and the longest URL
//! lifetime has passed, drop `GATEWAY_SECRET_PREVIOUS`. Ciphertexts from before
//! key ids (`v1:<base64>`) are tried with every key.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;
use crate::domain::{AssistantId, CallId, CalloutId};

type HmacSha256 = Hmac<Sha256>;

/// What a webhook URL is for. Part of the signed message, so a signature for one
/// purpose (or turn, or call) is refused for any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Status,
    Collect {
        turn: u32,
    },
    /// `machineDetection.eventUrl`.
    Machine,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("stored key is not in a known format")]
    Format,
    #[error("stored key does not decrypt with GATEWAY_SECRET (or GATEWAY_SECRET_PREVIOUS)")]
    Decrypt,
}

#[derive(Clone)]
struct KeySet {
    /// 8 hex digits naming the secret in signatures and ciphertexts.
    kid: String,
    webhook: Secret<[u8; 32]>,
    notify: Secret<[u8; 32]>,
    storage: Secret<[u8; 32]>,
}

fn derive(secret: &[u8], label: &str) -> Secret<[u8; 32]> {
    // HMAC as a KDF: the secret keys the MAC, the label is the message.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(label.as_bytes());
    Secret::new(mac.finalize().into_bytes().into())
}

impl KeySet {
    fn new(secret: &[u8]) -> Self {
        Self {
            kid: hex::encode(&derive(secret, "ivr-gateway/key-id/v1").expose()[..4]),
            webhook: derive(secret, "ivr-gateway/webhook-url/v1"),
            notify: derive(secret, "ivr-gateway/notify-body/v1"),
            storage: derive(secret, "ivr-gateway/assistant-key/v1"),
        }
    }
}

/// How far a notification's timestamp may be from the receiver's clock, in
/// seconds, before a receiver should refuse it as a replay (published in
/// docs/api.md; what [`Signer::verify_notification`] applies).
pub const NOTIFY_TOLERANCE_S: i64 = 300;

/// Signs and verifies; encrypts and decrypts. Cheap to clone.
#[derive(Clone)]
pub struct Signer {
    current: KeySet,
    /// `GATEWAY_SECRET_PREVIOUS`: accepted, and what it encrypted is re-encrypted.
    previous: Option<KeySet>,
    /// `GATEWAY_SECRET_NEXT`: accepted, never used, never re-encrypted away from.
    next: Option<KeySet>,
    /// `NOTIFY_SECRET`, used as-is as the notification HMAC key, so receivers
    /// never hold `GATEWAY_SECRET`. Without it, the key derived from
    /// `GATEWAY_SECRET` (label `ivr-gateway/notify-body/v1`) signs.
    notify: Option<Secret<Vec<u8>>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(b"|");
        }
        mac.update(p);
    }
    mac
}

/// HMAC-SHA256 over `<t>.<body>`: the format docs/api.md publishes.
fn notify_mac(key: &[u8], t: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn webhook_message(purpose: Purpose, callout: CalloutId, call: CallId, expires: i64) -> String {
    match purpose {
        Purpose::Status => format!("status|{callout}|{call}|exp={expires}"),
        Purpose::Collect { turn } => format!("collect|{callout}|{call}|{turn}|exp={expires}"),
        Purpose::Machine => format!("machine|{callout}|{call}|exp={expires}"),
    }
}

/// How long a webhook URL stays valid: the longest call deadline a policy
/// allows (ring 60 s + call 3600 s + 60 s, `Policy::call_deadline_s`) plus an
/// hour's grace for Routee's late callbacks. A URL leaked from logs or a
/// proxy is useless after that.
pub const SIGNED_URL_LIFETIME_S: i64 = 60 + 3600 + 60 + 3600;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Signer {
    pub fn new(current: &Secret<Vec<u8>>, previous: Option<&Secret<Vec<u8>>>) -> Self {
        Self {
            current: KeySet::new(current.expose()),
            previous: previous.map(|p| KeySet::new(p.expose())),
            next: None,
            notify: None,
        }
    }

    /// Accepts `GATEWAY_SECRET_NEXT` too (phase 1 of a rotation).
    #[must_use]
    pub fn with_next_secret(mut self, secret: Option<&Secret<Vec<u8>>>) -> Self {
        self.next = secret.map(|s| KeySet::new(s.expose()));
        self
    }

    /// The key id of `GATEWAY_SECRET`.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    fn key_set(&self, kid: &str) -> Option<&KeySet> {
        self.key_sets().find(|k| k.kid == kid)
    }

    /// Signs notifications with `NOTIFY_SECRET` (when given) instead of the key
    /// derived from `GATEWAY_SECRET`.
    #[must_use]
    pub fn with_notify_secret(mut self, secret: Option<&Secret<Vec<u8>>>) -> Self {
        self.notify = secret.cloned();
        self
    }

    /// The notification HMAC keys to try, the signing one first.
    fn notify_keys(&self) -> Vec<&[u8]> {
        match &self.notify {
            Some(k) => vec![k.expose().as_slice()],
            None => self
                .key_sets()
                .map(|k| k.notify.expose().as_slice())
                .collect(),
        }
    }

    fn key_sets(&self) -> impl Iterator<Item = &KeySet> {
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .chain(self.next.as_ref())
    }

    /// The signature to put in a webhook URL: `v1.<kid>.<expiry>.<mac>`, the
    /// current secret's key id, the expiry in unix seconds
    /// ([`SIGNED_URL_LIFETIME_S`] from now) and the URL-safe base64 of an
    /// HMAC-SHA256 over the purpose, ids and that expiry.
    pub fn sign(&self, purpose: Purpose, callout: CalloutId, call: CallId) -> String {
        self.sign_at(purpose, callout, call, unix_now())
    }

    /// [`Self::sign`] as if the time were `now_unix`.
    pub fn sign_at(
        &self,
        purpose: Purpose,
        callout: CalloutId,
        call: CallId,
        now_unix: i64,
    ) -> String {
        let expires = now_unix + SIGNED_URL_LIFETIME_S;
        let msg = webhook_message(purpose, callout, call, expires);
        let tag = URL_SAFE_NO_PAD.encode(
            mac(self.current.webhook.expose(), &[msg.as_bytes()])
                .finalize()
                .into_bytes(),
        );
        format!("v1.{}.{expires}.{tag}", self.current.kid)
    }

    /// Constant-time check of a webhook URL signature, with either secret, and
    /// of its expiry.
    pub fn verify(
        &self,
        purpose: Purpose,
        callout: CalloutId,
        call: CallId,
        signature: &str,
    ) -> bool {
        self.verify_at(purpose, callout, call, signature, unix_now())
    }

    /// [`Self::verify`] as if the time were `now_unix`.
    pub fn verify_at(
        &self,
        purpose: Purpose,
        callout: CalloutId,
        call: CallId,
        signature: &str,
        now_unix: i64,
    ) -> bool {
        let mut parts = signature.split('.');
        let (Some("v1"), Some(kid), Some(expires), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return false;
        };
        let Some(keys) = self.key_set(kid) else {
            return false;
        };
        let Ok(expires) = expires.parse::<i64>() else {
            return false;
        };
        if expires < now_unix {
            return false;
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag.as_bytes()) else {
            return false;
        };
        let msg = webhook_message(purpose, callout, call, expires);
        mac(keys.webhook.expose(), &[msg.as_bytes()])
            .verify_slice(&tag)
            .is_ok()
    }

    /// `X-Ivr-Signature` header value for a notification body: `t=<unix>,v1=<hex>`,
    /// the hex of HMAC-SHA256(key, `<unix>` + `.` + body), the key being
    /// `NOTIFY_SECRET`'s bytes (the timestamp lets receivers refuse replays).
    pub fn sign_notification(&self, unix_secs: i64, body: &[u8]) -> String {
        let t = unix_secs.to_string();
        let key = self.notify_keys()[0];
        format!(
            "t={t},v1={}",
            hex::encode(notify_mac(key, &t, body).finalize().into_bytes())
        )
    }

    /// Checks a notification signature as a receiver should: the HMAC, and the
    /// timestamp within [`NOTIFY_TOLERANCE_S`] of `now_unix`.
    pub fn verify_notification_at(&self, header: &str, body: &[u8], now_unix: i64) -> bool {
        let mut t = None;
        let mut v1 = None;
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", v)) => t = Some(v),
                Some(("v1", v)) => v1 = hex::decode(v).ok(),
                _ => {}
            }
        }
        let (Some(t), Some(tag)) = (t, v1) else {
            return false;
        };
        let Ok(at) = t.parse::<i64>() else {
            return false;
        };
        if (now_unix - at).abs() > NOTIFY_TOLERANCE_S {
            return false;
        }
        self.notify_keys()
            .into_iter()
            .any(|k| notify_mac(k, t, body).verify_slice(&tag).is_ok())
    }

    /// [`Self::verify_notification_at`] against the system clock.
    pub fn verify_notification(&self, header: &str, body: &[u8]) -> bool {
        self.verify_notification_at(header, body, unix_now())
    }

    /// Encrypts an assistant's API key (AES-256-GCM, random nonce, the assistant id
    /// as associated data so a ciphertext cannot be moved to another assistant).
    pub fn encrypt_key(&self, assistant: AssistantId, plaintext: &str) -> String {
        let cipher = Aes256Gcm::new(self.current.storage.expose().into());
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = assistant.to_string();
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("AES-GCM encryption of a short key cannot fail"));
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("v1:{}:{}", self.current.kid, STANDARD.encode(out))
    }

    /// Decrypts with the key its key id names (one from before key ids: with
    /// each configured key in turn).
    pub fn decrypt_key(
        &self,
        assistant: AssistantId,
        stored: &str,
    ) -> Result<Secret<String>, CryptoError> {
        self.decrypt_with(assistant, stored).map(|(plain, _)| plain)
    }

    /// [`Self::decrypt_key`], and the key set that decrypted it.
    fn decrypt_with(
        &self,
        assistant: AssistantId,
        stored: &str,
    ) -> Result<(Secret<String>, &KeySet), CryptoError> {
        let rest = stored.strip_prefix("v1:").ok_or(CryptoError::Format)?;
        let (candidates, raw): (Vec<&KeySet>, &str) = match rest.split_once(':') {
            Some((kid, raw)) => (self.key_set(kid).into_iter().collect(), raw),
            None => (self.key_sets().collect(), rest),
        };
        let bytes = STANDARD.decode(raw).map_err(|_| CryptoError::Format)?;
        if bytes.len() < 12 + 16 {
            return Err(CryptoError::Format);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let aad = assistant.to_string();
        candidates
            .into_iter()
            .find_map(|k| {
                let plain = Aes256Gcm::new(k.storage.expose().into())
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: sealed,
                            aad: aad.as_bytes(),
                        },
                    )
                    .ok()?;
                String::from_utf8(plain).ok().map(|p| (Secret::new(p), k))
            })
            .ok_or(CryptoError::Decrypt)
    }

    /// True when `stored` is under `GATEWAY_SECRET_PREVIOUS` (re-encrypt it
    /// with the current secret). Never for what is under `GATEWAY_SECRET_NEXT`:
    /// a replica not yet switched must not undo a switched one's work.
    pub fn needs_reencryption(&self, assistant: AssistantId, stored: &str) -> bool {
        let Some(previous) = &self.previous else {
            return false;
        };
        matches!(self.decrypt_with(assistant, stored), Ok((_, k)) if k.kid == previous.kid)
    }

    /// True when `stored` is under a key other than `GATEWAY_SECRET` (what the
    /// `ivr_secret_old_key_items` gauge counts).
    pub fn is_under_old_key(&self, assistant: AssistantId, stored: &str) -> bool {
        matches!(self.decrypt_with(assistant, stored), Ok((_, k)) if k.kid != self.current.kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> Signer {
        Signer::new(&Secret::new(secret.as_bytes().to_vec()), None)
    }

    #[test]
    fn a_signature_is_bound_to_its_purpose_turn_and_call() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let (co, call) = (CalloutId::new(), CallId::new());
        let sig = s.sign(Purpose::Collect { turn: 1 }, co, call);
        assert!(s.verify(Purpose::Collect { turn: 1 }, co, call, &sig));
        assert!(!s.verify(Purpose::Collect { turn: 2 }, co, call, &sig));
        assert!(!s.verify(Purpose::Status, co, call, &sig));
        assert!(!s.verify(Purpose::Machine, co, call, &sig));
        let machine = s.sign(Purpose::Machine, co, call);
        assert!(s.verify(Purpose::Machine, co, call, &machine));
        assert!(!s.verify(Purpose::Status, co, call, &machine));
        assert!(
            !s.verify(Purpose::Collect { turn: 1 }, co, CallId::new(), &sig),
            "replayed for another call"
        );
        assert!(!s.verify(Purpose::Collect { turn: 1 }, CalloutId::new(), call, &sig));
        assert!(!s.verify(Purpose::Collect { turn: 1 }, co, call, ""));
        assert!(!s.verify(Purpose::Collect { turn: 1 }, co, call, "not base64!"));
        assert!(!signer("another-secret-another-secret-xx").verify(
            Purpose::Collect { turn: 1 },
            co,
            call,
            &sig
        ));
    }

    #[test]
    fn the_previous_secret_still_verifies_and_decrypts_during_rotation() {
        let old = signer("old-secret-old-secret-old-secret");
        let (co, call, asst) = (CalloutId::new(), CallId::new(), AssistantId::new());
        let sig = old.sign(Purpose::Status, co, call);
        let stored = old.encrypt_key(asst, "VF.DM.abc.def");
        let rotated = Signer::new(
            &Secret::new(b"new-secret-new-secret-new-secret".to_vec()),
            Some(&Secret::new(b"old-secret-old-secret-old-secret".to_vec())),
        );
        assert!(rotated.verify(Purpose::Status, co, call, &sig));
        assert_eq!(
            rotated.decrypt_key(asst, &stored).unwrap().expose(),
            "VF.DM.abc.def"
        );
        assert!(rotated.needs_reencryption(asst, &stored));
        assert!(!rotated.needs_reencryption(asst, &rotated.encrypt_key(asst, "k")));
    }

    #[test]
    fn a_rolling_rotation_never_refuses_a_replicas_url_nor_re_encrypts_back() {
        const OLD: &[u8] = b"old-secret-old-secret-old-secret";
        const NEW: &[u8] = b"new-secret-new-secret-new-secret";
        let (co, call, asst) = (CalloutId::new(), CallId::new(), AssistantId::new());
        let before = Signer::new(&Secret::new(OLD.to_vec()), None);
        // Phase 1: NEW announced; phase 2: NEW current, OLD previous.
        let announced = before
            .clone()
            .with_next_secret(Some(&Secret::new(NEW.to_vec())));
        let switched = Signer::new(&Secret::new(NEW.to_vec()), Some(&Secret::new(OLD.to_vec())));
        assert_ne!(announced.current_kid(), switched.current_kid());
        for (signer, verifier) in [
            (&before, &announced),
            (&announced, &switched),
            (&switched, &announced),
        ] {
            let sig = signer.sign(Purpose::Collect { turn: 3 }, co, call);
            assert!(verifier.verify(Purpose::Collect { turn: 3 }, co, call, &sig));
            let stored = signer.encrypt_key(asst, "VF.DM.k");
            assert_eq!(
                verifier.decrypt_key(asst, &stored).unwrap().expose(),
                "VF.DM.k"
            );
        }
        let by_old = announced.encrypt_key(asst, "VF.DM.k");
        let by_new = switched.encrypt_key(asst, "VF.DM.k");
        assert!(by_new.starts_with(&format!("v1:{}:", switched.current_kid())));
        assert!(switched.needs_reencryption(asst, &by_old), "old -> new");
        assert!(
            !announced.needs_reencryption(asst, &by_new),
            "a replica not yet switched leaves the new key alone"
        );
        assert!(announced.is_under_old_key(asst, &by_new));
        assert!(!switched.is_under_old_key(asst, &by_new));
        // A key id nobody configured is refused outright.
        let sig = switched.sign(Purpose::Status, co, call);
        assert!(!before.verify(Purpose::Status, co, call, &sig));
        assert_eq!(before.decrypt_key(asst, &by_new), Err(CryptoError::Decrypt));
        // Ciphertexts from before key ids still decrypt, and under the previous
        // secret they are re-encrypted.
        let legacy = format!("v1:{}", by_old.rsplit(':').next().unwrap());
        assert_eq!(
            switched.decrypt_key(asst, &legacy).unwrap().expose(),
            "VF.DM.k"
        );
        assert!(switched.needs_reencryption(asst, &legacy));
    }

    #[test]
    fn encrypted_keys_do_not_contain_the_key_and_are_bound_to_their_assistant() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let asst = AssistantId::new();
        let stored = s.encrypt_key(asst, "VF.DM.secret-part");
        assert!(!stored.contains("secret-part") && !stored.contains("VF.DM"));
        assert_ne!(
            stored,
            s.encrypt_key(asst, "VF.DM.secret-part"),
            "nonces are random"
        );
        assert_eq!(
            s.decrypt_key(AssistantId::new(), &stored),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(s.decrypt_key(asst, "v1:short"), Err(CryptoError::Format));
        assert_eq!(s.decrypt_key(asst, "plain"), Err(CryptoError::Format));
    }

    #[test]
    fn webhook_signatures_expire_and_their_expiry_cannot_be_moved() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let (co, call) = (CalloutId::new(), CallId::new());
        let t0 = 1_700_000_000;
        let sig = s.sign_at(Purpose::Status, co, call, t0);
        let end = t0 + SIGNED_URL_LIFETIME_S;
        let kid = s.current_kid().to_owned();
        assert!(sig.starts_with(&format!("v1.{kid}.{end}.")), "{sig}");
        assert!(s.verify_at(Purpose::Status, co, call, &sig, end));
        assert!(
            !s.verify_at(Purpose::Status, co, call, &sig, end + 1),
            "expired"
        );
        let tag = sig.rsplit('.').next().unwrap();
        let moved = format!("v1.{kid}.{}.{tag}", end + 86_400);
        assert!(
            !s.verify_at(Purpose::Status, co, call, &moved, end + 1),
            "expiry edited"
        );
        assert!(
            !s.verify_at(Purpose::Status, co, call, tag, t0),
            "no expiry"
        );
        assert!(
            !s.verify_at(Purpose::Status, co, call, &format!("{end}.{tag}"), t0),
            "no key id"
        );
    }

    #[test]
    fn notification_signatures_verify_and_detect_tampering() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let header = s.sign_notification(1_700_000_000, b"{\"status\":\"accepted\"}");
        assert!(header.starts_with("t=1700000000,v1="));
        let now = 1_700_000_000 + NOTIFY_TOLERANCE_S;
        assert!(s.verify_notification_at(&header, b"{\"status\":\"accepted\"}", now));
        assert!(!s.verify_notification_at(&header, b"{\"status\":\"exhausted\"}", now));
        assert!(
            !s.verify_notification_at(&header, b"{\"status\":\"accepted\"}", now + 1),
            "too old"
        );
        assert!(!s.verify_notification("t=1,v1=00", b"x"));
    }

    #[test]
    fn a_notify_secret_signs_notifications_as_is_over_timestamp_dot_body() {
        let notify = Secret::new(b"notify-secret-for-receivers-0123456789".to_vec());
        let s = signer("0123456789abcdef0123456789abcdef").with_notify_secret(Some(&notify));
        let header = s.sign_notification(1_700_000_000, b"{}");
        let mut expected = <HmacSha256 as Mac>::new_from_slice(notify.expose()).unwrap();
        expected.update(b"1700000000.{}");
        let expected = hex::encode(expected.finalize().into_bytes());
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
        assert!(
            !signer("0123456789abcdef0123456789abcdef").verify_notification_at(
                &header,
                b"{}",
                1_700_000_000
            )
        );
    }
}
