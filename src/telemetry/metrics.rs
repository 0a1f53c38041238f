//! Every metric the gateway exports, in one place: names, HELP text, label sets and
//! histogram buckets. Call sites use these constants; the README's metrics table and
//! `deploy/` (Grafana dashboard, alert rules) are written from this list.
//!
//! Labels are bounded by construction: an outcome, a route template, an upstream
//! operation, a status class. Never an id, a phone number or an error text.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Callouts created. No labels.
pub const CALLOUTS_CREATED: &str = "ivr_callouts_created_total";
/// Callouts that reached a final status. Label `status`: accepted|exhausted|cancelled|failed.
pub const CALLOUTS_FINISHED: &str = "ivr_callouts_finished_total";
/// Callouts still calling, read from the store (right across restarts and replicas).
pub const CALLOUTS_ACTIVE: &str = "ivr_callouts_active";
/// Calls placed and not yet final, read from the store.
pub const CALLS_ACTIVE: &str = "ivr_calls_active";
/// Outbound call creations. Label `result`: ok|transient_error|permanent_error.
pub const CALLS_PLACED: &str = "ivr_calls_placed_total";
/// Carrier outages met by an attempt: the carrier failed to create its call
/// (refused, 429, 5xx, unreachable) and the attempt waits to be placed again.
/// No labels.
pub const CARRIER_UNAVAILABLE: &str = "ivr_carrier_unavailable_total";
/// Calls held back before placement. Label `reason`: person_limit (the number
/// was called as often as `PERSON_CALLS_PER_15_MIN` / `_PER_HOUR` allow).
pub const CALLS_HELD: &str = "ivr_calls_held_total";
/// Finished attempts. Label `outcome`: accepted|rejected|no_input|hung_up|voicemail|no_answer|busy|failed|cancelled.
pub const ATTEMPT_OUTCOMES: &str = "ivr_attempt_outcomes_total";
/// Key presses received from callers. Label `key`: 0-9, star, hash, other.
pub const DTMF_RECEIVED: &str = "ivr_dtmf_received_total";
/// Seconds from callout creation to acceptance.
pub const TIME_TO_ACCEPT: &str = "ivr_time_to_accept_seconds";
/// Seconds to answer a Routee webhook. Labels `route`: collect|status, `status_class`: 2xx|4xx|5xx.
pub const WEBHOOK_DURATION: &str = "ivr_webhook_duration_seconds";
/// eventUrl answers that were not the assistant's own turn. Label `reason`:
/// voiceflow_timeout|voiceflow_error|turn_busy|late_output|store_error|store_timeout.
pub const WEBHOOK_FALLBACKS: &str = "ivr_webhook_fallbacks_total";
/// Assistant no-reply turns run ahead of the silence (`docs/assistants.md`).
/// Label `outcome`: played|not_in_time|not_saved|no_time (when run), heard|key_won
/// (when the next input settled it).
pub const NO_REPLY_AHEAD: &str = "ivr_no_reply_ahead_total";
/// Events of Voiceflow's streamed turns that were not traces (skipped).
pub const VOICEFLOW_STREAM_MALFORMED: &str = "ivr_voiceflow_stream_malformed_total";
/// Voiceflow audio traces said as text because their audio could not be made
/// playable. Label `reason`: timeout|unsupported|refused|fetch_error|too_large|undecodable.
pub const AUDIO_FALLBACKS: &str = "ivr_audio_fallbacks_total";
/// Seconds to make one Voiceflow audio trace playable (fetch, decode, resample;
/// a cached source is near zero).
pub const AUDIO_CONVERSION_DURATION: &str = "ivr_audio_conversion_duration_seconds";
/// Seconds per upstream request. Labels `upstream`: routee|voiceflow|notify,
/// `operation` (a fixed name per endpoint), `status_class`: 2xx|3xx|4xx|5xx|timeout|error.
pub const UPSTREAM_DURATION: &str = "ivr_upstream_request_duration_seconds";
/// Seconds between a durable timer's due time and when a replica fired it.
pub const TIMER_LAG: &str = "ivr_timer_lag_seconds";
/// Occurrences of scheduled callouts handled. Label `result`: created (the
/// callout was made), already (another replica or an earlier try made it),
/// failed (the stored request is no longer valid; recorded on the schedule).
pub const SCHEDULE_FIRINGS: &str = "ivr_schedule_firings_total";
/// Seconds a call placement waited for the shared outbound rate limit.
pub const RATE_LIMIT_WAIT: &str = "ivr_call_rate_limit_wait_seconds";
/// Final-state notifications to `notify_url`. Label `result`: delivered|retry|gave_up|refused.
pub const NOTIFY_DELIVERIES: &str = "ivr_notify_deliveries_total";
/// Optimistic-concurrency conflicts on a callout (another replica or webhook won the race).
pub const STORE_CONFLICTS: &str = "ivr_store_conflicts_total";
/// Redis writes that matter most (a decision, a call being sent or placed, a
/// callout's end) by replica acknowledgement (`WAIT`). Label `result`: acked|timeout|skipped.
/// A timeout leaves the write standing but not yet replicated; skipped: the
/// shard's replicas missed a WAIT in the last second.
pub const STORE_REPLICA_ACKS: &str = "ivr_store_replica_acks_total";
/// Dispatcher/admin API requests. Labels `route` (template), `method`, `status_class`.
pub const API_REQUESTS: &str = "ivr_api_requests_total";
/// Calls placed today (UTC) by all replicas, as last counted by this one
/// (take max across replicas). Alert as it nears `MAX_CALLS_PER_DAY`.
pub const CALLS_TODAY: &str = "ivr_calls_today";
/// `MAX_CALLS_PER_DAY` (absent when unset).
pub const CALLS_PER_DAY_CAP: &str = "ivr_calls_per_day_cap";
/// Calls placed today (UTC) by all replicas for the callouts of one API key
/// (label `key`, its fingerprint). Alert as it nears `MAX_CALLS_PER_DAY_PER_KEY`.
pub const CALLS_TODAY_BY_KEY: &str = "ivr_calls_today_by_key";
/// `MAX_CALLS_PER_DAY_PER_KEY` (absent when unset).
pub const CALLS_PER_DAY_PER_KEY_CAP: &str = "ivr_calls_per_day_per_key_cap";
/// Stored items (assistants' Voiceflow keys) still encrypted under a secret
/// other than `GATEWAY_SECRET`: a rotation is done when it is 0 everywhere.
pub const SECRET_OLD_KEY_ITEMS: &str = "ivr_secret_old_key_items";
/// 1 while this replica is ready (store reachable, configuration valid), else 0.
pub const READY: &str = "ivr_ready";
/// Always 1; labels `version` and `mode` (sandbox|live).
pub const BUILD_INFO: &str = "ivr_build_info";

/// Buckets around Routee's 3-second eventUrl window, and from 0.25 ms in steps
/// fine enough to read the gateway's own cost: a p99 of a few milliseconds falls
/// between bounds at most 1 ms apart (up to 4 ms; 2.5 ms apart up to 10 ms).
pub const WEBHOOK_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 2.75, 3.0, 5.0,
];
/// From a quick pickup to an hour of escalation.
pub const TIME_TO_ACCEPT_BUCKETS: &[f64] = &[
    5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];
/// From 0.25 ms (an upstream on the same host or network, a fake in a benchmark)
/// to the default 10 s request timeout; 2.5 s is the default webhook deadline,
/// the longest a Voiceflow turn can take before the caller hears a holding phrase.
pub const UPSTREAM_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.0, 2.5, 5.0, 10.0,
];
pub const TIMER_LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
pub const RATE_LIMIT_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0];

/// Builds the Prometheus recorder with our buckets. Installs it globally when no
/// recorder is installed yet (several `Application`s in one test process share it).
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = [
                (WEBHOOK_DURATION, WEBHOOK_BUCKETS),
                (TIME_TO_ACCEPT, TIME_TO_ACCEPT_BUCKETS),
                (UPSTREAM_DURATION, UPSTREAM_BUCKETS),
                (TIMER_LAG, TIMER_LAG_BUCKETS),
                (RATE_LIMIT_WAIT, RATE_LIMIT_BUCKETS),
            ]
            .into_iter()
            .fold(PrometheusBuilder::new(), |b, (name, buckets)| {
                b.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                    .unwrap_or_else(|_| unreachable!("bucket lists are non-empty"))
            });
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is already installed (e.g. a test
            // harness); our handle then renders nothing, which the metrics tests catch.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// HELP lines for every family.
fn describe() {
    describe_counter!(CALLOUTS_CREATED, "Callouts created.");
    describe_counter!(
        SCHEDULE_FIRINGS,
        "Occurrences of scheduled callouts handled, by result."
    );
    describe_counter!(
        CALLOUTS_FINISHED,
        "Callouts that reached a final status, by status."
    );
    describe_gauge!(
        CALLOUTS_ACTIVE,
        "Callouts still calling (from the store; the same on every replica)."
    );
    describe_gauge!(
        CALLS_ACTIVE,
        "Calls placed and not yet final (from the store)."
    );
    describe_counter!(
        CALLS_PLACED,
        "Outbound call creations sent to the carrier, by result."
    );
    describe_counter!(ATTEMPT_OUTCOMES, "Finished call attempts, by outcome.");
    describe_counter!(
        CARRIER_UNAVAILABLE,
        "Attempts whose call the carrier failed to create; each waits and is placed again (no attempt is consumed)."
    );
    describe_counter!(
        CALLS_HELD,
        "Calls held back before placement (a per-person limit), by reason; each waits and is placed later."
    );
    describe_counter!(DTMF_RECEIVED, "Key presses received from callers, by key.");
    describe_histogram!(
        TIME_TO_ACCEPT,
        Unit::Seconds,
        "Time from callout creation to acceptance."
    );
    describe_histogram!(
        WEBHOOK_DURATION,
        Unit::Seconds,
        "Time to answer a Routee webhook, by route and status class."
    );
    describe_counter!(
        WEBHOOK_FALLBACKS,
        "eventUrl answers that were a holding or fallback dialplan, by reason."
    );
    describe_counter!(
        NO_REPLY_AHEAD,
        "Assistant no-reply turns run ahead of the silence, and how the next input settled them."
    );
    describe_counter!(
        VOICEFLOW_STREAM_MALFORMED,
        "Events of Voiceflow's streamed turns that were not traces, skipped."
    );
    describe_counter!(
        AUDIO_FALLBACKS,
        "Voiceflow audio traces said as text instead (fetch or decode failed, or too slow), by reason."
    );
    describe_histogram!(
        AUDIO_CONVERSION_DURATION,
        Unit::Seconds,
        "Time to fetch, decode and resample a Voiceflow audio trace (cached: near zero)."
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Upstream request latency, by upstream, operation and status class."
    );
    describe_histogram!(
        TIMER_LAG,
        Unit::Seconds,
        "Delay between a durable timer's due time and its firing."
    );
    describe_histogram!(
        RATE_LIMIT_WAIT,
        Unit::Seconds,
        "Time a call placement waited for the shared outbound rate limit."
    );
    describe_counter!(
        NOTIFY_DELIVERIES,
        "Final-state notifications to notify_url, by result."
    );
    describe_counter!(
        STORE_CONFLICTS,
        "Optimistic-concurrency conflicts on a callout (retried)."
    );
    describe_counter!(
        STORE_REPLICA_ACKS,
        "Redis writes that matter most, by replica acknowledgement (WAIT)."
    );
    describe_counter!(
        API_REQUESTS,
        "Dispatcher and admin API requests, by route, method and status class."
    );
    describe_gauge!(
        READY,
        "1 while this replica is ready to serve (store reachable, configuration valid)."
    );
    describe_gauge!(BUILD_INFO, "Build information; always 1.");
    describe_gauge!(
        CALLS_TODAY,
        "Calls placed today (UTC) by all replicas, as last counted by this replica."
    );
    describe_gauge!(CALLS_PER_DAY_CAP, "MAX_CALLS_PER_DAY.");
    describe_gauge!(
        CALLS_TODAY_BY_KEY,
        "Calls placed today (UTC) by all replicas for the callouts of one API key."
    );
    describe_gauge!(CALLS_PER_DAY_PER_KEY_CAP, "MAX_CALLS_PER_DAY_PER_KEY.");
    describe_gauge!(
        SECRET_OLD_KEY_ITEMS,
        "Stored Voiceflow keys still encrypted under a secret other than GATEWAY_SECRET."
    );
}

/// `2xx`, `4xx`... for a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The bounded `key` label for a DTMF key.
pub fn dtmf_key_label(key: char) -> &'static str {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match key {
        '0'..='9' => DIGITS[(key as u8 - b'0') as usize],
        '*' => "star",
        '#' => "hash",
        _ => "other",
    }
}
