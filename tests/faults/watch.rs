//! "Nothing is stuck", sampled all through the run straight from Redis: a
//! callout still `calling` must have a timer (its next dial, lease, grace period
//! or retry) or a live call awaiting the carrier (the reconciliation index). The
//! document and both indexes are read in one MULTI, so a single sample is exact:
//! the gateway writes all three in one Lua script.

use std::collections::BTreeMap;
use std::time::Duration;

use ivr_gateway::domain::{CalloutId, Timestamp};
use ivr_gateway::store::keys::{Keys, SHARDS, shard_of};
use redis::AsyncCommands;

const PREFIX: &str = "ivr";

/// Callouts found calling with nothing pending, with when they were seen.
#[derive(Debug, Default, Clone)]
pub struct Stuck {
    pub seen: BTreeMap<String, Timestamp>,
    pub samples: u32,
}

/// Samples the run's Redis: one server, or the cluster (whose client routes each
/// command, and each single-slot MULTI, to its primary).
async fn sample(url: &str) -> Result<Vec<String>, redis::RedisError> {
    match ivr_gateway::store::target::Target::parse(url) {
        Ok(ivr_gateway::store::target::Target::Cluster { nodes }) => {
            let mut conn = redis::cluster::ClusterClient::new(nodes)?
                .get_async_connection()
                .await?;
            sample_on(&mut conn).await
        }
        _ => {
            let mut conn = redis::Client::open(url)?
                .get_multiplexed_async_connection()
                .await?;
            sample_on(&mut conn).await
        }
    }
}

async fn sample_on(
    conn: &mut (impl redis::aio::ConnectionLike + Send + Sync),
) -> Result<Vec<String>, redis::RedisError> {
    let keys = Keys::new(PREFIX);
    let mut stuck = Vec::new();
    for shard in 0..SHARDS {
        let ids: Vec<String> = conn.zrange(keys.all(shard), 0, -1).await?;
        for raw in ids {
            let Ok(id) = raw.parse::<CalloutId>() else {
                continue;
            };
            let s = shard_of(id);
            let (status, timer, live): (Option<String>, Option<f64>, Option<f64>) = redis::pipe()
                .atomic()
                .hget(keys.callout(id), "s")
                .zscore(keys.timers(s), &raw)
                .zscore(keys.live(s), &raw)
                .query_async(conn)
                .await?;
            if status.as_deref() == Some("calling") && timer.is_none() && live.is_none() {
                stuck.push(raw);
            }
        }
    }
    Ok(stuck)
}

/// Samples every `every` until `stop` fires; samples that Redis does not answer
/// promptly (it is frozen or down) are skipped.
pub async fn run(url: String, every: Duration, stop: tokio_util::sync::CancellationToken) -> Stuck {
    let mut out = Stuck::default();
    loop {
        if let Ok(Ok(ids)) = tokio::time::timeout(Duration::from_secs(2), sample(&url)).await {
            out.samples += 1;
            for id in ids {
                out.seen.entry(id).or_insert_with(Timestamp::now);
            }
        }
        tokio::select! {
            () = stop.cancelled() => return out,
            () = tokio::time::sleep(every) => {}
        }
    }
}
