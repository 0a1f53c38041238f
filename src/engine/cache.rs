//! A replica-local cache of the callout documents this replica last read or
//! committed, for the webhook hot paths.
//!
//! A key press or status callback usually follows another one of the same call on
//! the same replica. Starting its transition from the cached document instead of
//! reading it from the store saves a Redis round trip and a JSON parse per
//! webhook. It never decides anything on its own: the commit is still a
//! compare-and-set on the version, so a cached document that another replica has
//! moved past makes the commit conflict, the entry is dropped, and the transition
//! runs again on a fresh read. A stale document can only be *older* than the
//! store (versions only move forward here), and every transition treats older
//! state as "not done yet", so reading one can at worst cost a conflict.
//!
//! The timer loop, the periodic jobs and the API's reads always read the store.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::domain::{Callout, CalloutId};
use crate::store::Versioned;

/// Documents kept; beyond this, entries are dropped (the cache is an optimisation).
const CAPACITY: usize = 20_000;

#[derive(Debug, Default)]
pub(crate) struct DocCache {
    docs: Mutex<HashMap<CalloutId, (u64, Callout)>>,
}

impl DocCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<CalloutId, (u64, Callout)>> {
        // Entries are replaced whole; a poisoned lock still holds consistent ones.
        self.docs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the cached document out, if any: the caller transitions it and
    /// `put`s the committed result back, so the common path copies it once, not
    /// twice. A second webhook of the same callout meanwhile reads the store.
    pub fn take(&self, id: CalloutId) -> Option<Versioned<Callout>> {
        let (version, doc) = self.lock().remove(&id)?;
        Some(Versioned {
            version,
            value: doc,
        })
    }

    /// Remembers `callout` at `version`, unless a newer version is cached already
    /// (two tasks of this replica may finish out of order). Finished callouts with
    /// nothing left to do are forgotten instead.
    pub fn put(&self, version: u64, callout: Callout) {
        let id = callout.id;
        if callout.status.is_final() && callout.next_due().is_none() {
            self.lock().remove(&id);
            return;
        }
        let mut docs = self.lock();
        if docs.get(&id).is_some_and(|(v, _)| *v >= version) {
            return;
        }
        if docs.len() >= CAPACITY && !docs.contains_key(&id) {
            // Arbitrary eviction: losing an entry costs one store read later.
            if let Some(victim) = docs.keys().next().copied() {
                docs.remove(&victim);
            }
        }
        docs.insert(id, (version, callout));
    }

    pub fn forget(&self, id: CalloutId) {
        self.lock().remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Contact, NewCallout, Policy, Script, Timestamp, Timing};

    fn callout() -> Callout {
        let input = NewCallout {
            name: "T".into(),
            script: Script::Template { name: "t".into() },
            variables: Default::default(),
            contacts: vec![Contact {
                name: "A".into(),
                phone: "+306900000001".parse().unwrap(),
                language: None,
            }],
            policy: Policy::default(),
            notify_url: None,
        };
        Callout::create(CalloutId::new(), input, Timestamp(0)).0
    }

    #[test]
    fn the_newest_version_wins_and_finished_callouts_are_forgotten() {
        let cache = DocCache::default();
        let mut c = callout();
        cache.put(2, c.clone());
        c.name = "older".into();
        cache.put(1, c.clone());
        let taken = cache.take(c.id).unwrap();
        assert_eq!((taken.version, taken.value.name.as_str()), (2, "T"));
        assert!(cache.take(c.id).is_none(), "taken out, not copied");
        cache.put(2, taken.value);
        c.cancel(Timestamp(1), &Timing::default()).unwrap();
        cache.put(3, c.clone());
        assert!(cache.take(c.id).is_none());
    }
}
