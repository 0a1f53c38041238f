//! The store contract, run against both implementations.

use std::time::Duration;

use ivr_gateway::domain::{
    Assistant, AssistantId, AssistantSettings, CallId, Callout, CalloutId, CalloutStatus, Contact,
    Event, EventKind, NewCallout, Policy, Script, Timestamp, Timing,
};
use ivr_gateway::store::{CommitResult, Deleted, MemoryStore, RedisStore, Saved, Store};

use crate::redis_server::RedisServer;

const RETENTION: Duration = Duration::from_secs(3600);

async fn redis() -> (RedisServer, Store) {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), "test", RETENTION)
        .await
        .unwrap();
    (server, Store::Redis(store))
}

fn memory() -> Store {
    Store::Memory(MemoryStore::new(RETENTION))
}

fn new_callout(assistant: Option<AssistantId>) -> (Callout, Vec<Event>) {
    let input = NewCallout {
        name: "Ticket".into(),
        script: match assistant {
            Some(id) => Script::Assistant { id },
            None => Script::Template {
                name: "ticket-escalation".into(),
            },
        },
        variables: Default::default(),
        contacts: vec![Contact {
            name: "A".into(),
            phone: "+306900000001".parse().unwrap(),
            language: None,
        }],
        policy: Policy::default(),
        notify_url: None,
    };
    Callout::create(CalloutId::new(), input, Timestamp::now())
}

/// Runs one async test body against both stores.
macro_rules! both {
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn on_memory() {
                let $store = memory();
                $body
            }

            #[tokio::test]
            async fn on_redis() {
                let (_server, $store) = redis().await;
                $body
            }

            #[tokio::test]
            async fn on_redis_cluster() {
                let url = crate::redis_server::shared_cluster().url();
                let $store = ha_store(&url).await;
                $body
            }

            #[tokio::test]
            async fn on_redis_sentinel() {
                let url = crate::redis_server::shared_sentinel().url();
                let $store = ha_store(&url).await;
                $body
            }
        }
    };
}

/// A store on a shared cluster or Sentinel setup, under a prefix of its own.
async fn ha_store(url: &str) -> Store {
    let prefix = crate::redis_server::unique_prefix();
    Store::Redis(RedisStore::connect(url, &prefix, RETENTION).await.unwrap())
}

both!(commits_are_compare_and_set_on_the_version, |store| {
    let (mut c, events) = new_callout(None);
    assert_eq!(store.insert(&c, &events).await.unwrap(), 1);
    assert!(store.insert(&c, &events).await.is_err(), "inserted twice");
    c.name = "changed".into();
    let extra = [Event::new(Timestamp::now(), EventKind::CalloutCancelled)];
    assert_eq!(
        store.commit(&c, 1, &extra).await.unwrap(),
        CommitResult::Done { version: 2 }
    );
    // A writer that read version 1 loses.
    assert_eq!(
        store.commit(&c, 1, &[]).await.unwrap(),
        CommitResult::Conflict
    );
    let loaded = store.load(c.id).await.unwrap().unwrap();
    assert_eq!((loaded.version, loaded.value.name.as_str()), (2, "changed"));
    let timeline = store.events(c.id).await.unwrap();
    assert_eq!(timeline.len(), events.len() + 1);
    assert_eq!(timeline.last().unwrap().kind, EventKind::CalloutCancelled);
    assert!(store.load(CalloutId::new()).await.unwrap().is_none());
});

both!(a_due_timer_is_claimed_by_exactly_one_claimer, |store| {
    let (c, events) = new_callout(None);
    store.insert(&c, &events).await.unwrap();
    let now = Timestamp::now().plus_secs(1);
    let lease = Duration::from_secs(30);
    let (a, b) = tokio::join!(
        store.claim_due(now, lease, 10),
        store.claim_due(now, lease, 10)
    );
    let claimed = a.unwrap().len() + b.unwrap().len();
    assert_eq!(claimed, 1);
    // Leased: not claimable again until the lease runs out, then claimable again.
    assert!(store.claim_due(now, lease, 10).await.unwrap().is_empty());
    let again = store.claim_due(now.plus(lease), lease, 10).await.unwrap();
    assert_eq!(
        again.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![c.id]
    );
});

both!(
    release_restores_the_timer_only_for_an_unchanged_callout,
    |store| {
        let (c, events) = new_callout(None);
        store.insert(&c, &events).await.unwrap();
        let now = Timestamp::now().plus_secs(1);
        store
            .claim_due(now, Duration::from_secs(600), 10)
            .await
            .unwrap();
        store.release(c.id, 1, Some(now)).await.unwrap();
        assert_eq!(
            store
                .claim_due(now, Duration::from_secs(600), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        // A stale version does not move the timer.
        store.release(c.id, 7, Some(now)).await.unwrap();
        assert!(
            store
                .claim_due(now, Duration::from_secs(600), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
);

both!(indexes_follow_the_status_and_live_call, |store| {
    let timing = Timing::default();
    let (mut c, events) = new_callout(None);
    store.insert(&c, &events).await.unwrap();
    let (other, ev2) = new_callout(None);
    store.insert(&other, &ev2).await.unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.active_callouts, counts.live_calls), (2, 0));

    let now = Timestamp::now();
    let call = CallId::new();
    c.on_timer(now, &timing, call);
    c.on_placed(call, "trk".into(), now, &timing);
    store.commit(&c, 1, &[]).await.unwrap();
    assert_eq!(store.counts().await.unwrap().live_calls, 1);
    let overdue = store
        .overdue_calls(now.plus_secs(100_000), 10)
        .await
        .unwrap();
    assert_eq!(overdue, vec![c.id]);
    assert!(store.overdue_calls(now, 10).await.unwrap().is_empty());

    c.cancel(now, &timing).unwrap();
    store.commit(&c, 2, &[]).await.unwrap();
    let calling = store
        .list(Some(CalloutStatus::Calling), 10, None)
        .await
        .unwrap();
    assert_eq!(
        calling.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![other.id]
    );
    let cancelled = store
        .list(Some(CalloutStatus::Cancelled), 10, None)
        .await
        .unwrap();
    assert_eq!(
        cancelled.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![c.id]
    );
    // Newest first, with a cursor.
    let all = store.list(None, 10, None).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![other.id, c.id]
    );
    let page2 = store.list(None, 10, Some(other.id)).await.unwrap();
    assert_eq!(page2.iter().map(|c| c.id).collect::<Vec<_>>(), vec![c.id]);
    assert_eq!(store.counts().await.unwrap().active_callouts, 1);
});

both!(
    assistant_names_are_unique_and_in_use_assistants_are_kept,
    |store| {
        let now = Timestamp::now();
        let mk = |name: &str| Assistant {
            id: AssistantId::new(),
            name: name.into(),
            version: "production".into(),
            project_id: None,
            project_name: None,
            version_id: None,
            created_at: now,
            updated_at: now,
            settings: AssistantSettings::default(),
            encrypted_key: "v1:x".into(),
            key_hint: "abcd".into(),
        };
        let mut a = mk("support");
        assert_eq!(store.save_assistant(&a).await.unwrap(), Saved::Yes);
        assert_eq!(
            store.save_assistant(&mk("support")).await.unwrap(),
            Saved::NameTaken
        );
        a.name = "renamed".into();
        assert_eq!(store.save_assistant(&a).await.unwrap(), Saved::Yes);
        assert!(store.assistant_by_name("support").await.unwrap().is_none());
        assert_eq!(
            store
                .assistant_by_name("renamed")
                .await
                .unwrap()
                .unwrap()
                .id,
            a.id
        );
        assert_eq!(
            store.save_assistant(&mk("support")).await.unwrap(),
            Saved::Yes,
            "old name is free again"
        );

        let (c, events) = new_callout(Some(a.id));
        store.insert(&c, &events).await.unwrap();
        assert_eq!(
            store.delete_assistant(a.id).await.unwrap(),
            Deleted::InUse(1)
        );
        let mut done = c.clone();
        done.cancel(now, &Timing::default()).unwrap();
        store.commit(&done, 1, &[]).await.unwrap();
        assert_eq!(store.delete_assistant(a.id).await.unwrap(), Deleted::Yes);
        assert_eq!(
            store.delete_assistant(a.id).await.unwrap(),
            Deleted::NotFound
        );
        assert_eq!(store.assistants().await.unwrap().len(), 1);
    }
);

both!(the_call_rate_limit_spaces_reservations, |store| {
    let interval = Duration::from_millis(200);
    let mut waits = Vec::new();
    for _ in 0..5 {
        waits.push(store.reserve_call_slot(interval).await.unwrap());
    }
    // Each reservation waits about one interval longer than the previous.
    for pair in waits.windows(2) {
        let step = pair[1].saturating_sub(pair[0]);
        assert!(
            step >= Duration::from_millis(150) && step <= Duration::from_millis(250),
            "{waits:?}"
        );
    }
});

both!(a_lock_has_one_holder_until_it_expires, |store| {
    let ttl = Duration::from_millis(300);
    assert!(store.try_lock("job", "a", ttl).await.unwrap());
    assert!(!store.try_lock("job", "b", ttl).await.unwrap());
    assert!(
        store.try_lock("job", "a", ttl).await.unwrap(),
        "renewal by the holder"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.try_lock("job", "b", ttl).await.unwrap());
});

#[tokio::test]
async fn redis_with_an_evicting_policy_is_refused_with_a_clear_message() {
    let server =
        RedisServer::start_with(&["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]);
    let err = RedisStore::connect(&server.url(), "test", RETENTION)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("allkeys-lru") && text.contains("noeviction"),
        "{text}"
    );
}

#[tokio::test]
async fn finished_callouts_expire_after_the_retention_period() {
    let server = RedisServer::start();
    let store = Store::Redis(
        RedisStore::connect(&server.url(), "t", Duration::from_millis(300))
            .await
            .unwrap(),
    );
    let (mut c, events) = new_callout(None);
    store.insert(&c, &events).await.unwrap();
    c.cancel(Timestamp::now(), &Timing::default()).unwrap();
    store.commit(&c, 1, &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(store.load(c.id).await.unwrap().is_none());
    assert_eq!(store.purge_expired(Timestamp::now()).await.unwrap(), 1);
    assert!(store.list(None, 10, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn state_survives_a_redis_restart_with_aof() {
    let mut server = RedisServer::start_persistent();
    let store = Store::Redis(
        RedisStore::connect(&server.url(), "t", RETENTION)
            .await
            .unwrap(),
    );
    let (c, events) = new_callout(None);
    store.insert(&c, &events).await.unwrap();
    server.restart();
    // The connection manager reconnects by itself.
    let mut loaded = None;
    for _ in 0..50 {
        if let Ok(v) = store.load(c.id).await {
            loaded = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(loaded.unwrap().value, c);
}
