//! The application: built the same way by `main`, the demo and the tests
//! (`Application::build`, port 0 in tests), then run until shut down.
//!
//! # Processes
//!
//! One process runs, side by side, under one cancellation token:
//! the HTTP server (dispatcher API, assistants API, Routee webhooks, health,
//! metrics), the timer loop (fires durable timers claimed from the store), and the
//! periodic jobs (reconciliation, retention, gauges). In the sandbox it also runs
//! the carrier simulator (and, without a Voiceflow key, a simulated assistant) on
//! internal ports; the gateway talks to them over HTTP like to the real services.
//!
//! # Shutdown (SIGTERM)
//!
//! 1. readiness fails at once (`/readyz` 503) so load balancers stop sending work;
//! 2. the timer loop and periodic jobs stop claiming work; timers already claimed
//!    but not fired go to other replicas when their lease ends;
//! 3. after a short drain delay the HTTP server stops accepting connections and
//!    finishes the requests in flight (a webhook being answered is answered);
//! 4. background effects in flight (a call being placed, a notification) get up to
//!    `SHUTDOWN_GRACE_MS` to finish; anything cut short is recovered from the store
//!    by the replica that next fires the callout's timer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::assistants::{Assistants, RegistryError, SettingsChange};
use crate::config::{Config, Secret};
use crate::dialplan::template::{self, Templates};
use crate::domain::Timing;
use crate::engine::{Engine, EngineSettings, Jobs};
use crate::http::AppState;
use crate::routee::client::{RouteeClient, RouteeClientConfig};
use crate::security::Signer;
use crate::sim::voiceflow::{SimVoiceflow, SimVoiceflowHandle, SimVoiceflowSettings};
use crate::sim::{Callees, SimHandle, SimSettings, Simulator};
use crate::store::{MemoryStore, RedisOptions, RedisStore, Store};
use crate::telemetry::metrics as m;
use crate::voiceflow::client::{VoiceflowClient, VoiceflowClientConfig};

pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    sim: Option<SimHandle>,
    sim_voiceflow: Option<SimVoiceflowHandle>,
    shutdown: CancellationToken,
    prometheus: PrometheusHandle,
}

/// Name of the simulated assistant registered in the sandbox.
pub const SANDBOX_ASSISTANT: &str = "sandbox";
/// Name of the assistant registered from `VOICEFLOW_API_KEY`.
pub const DEFAULT_ASSISTANT: &str = "default";

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Loads the shipped templates, then those in `dir` (which may override them).
pub fn load_templates(dir: &std::path::Path) -> anyhow::Result<Templates> {
    let mut templates = template::embedded();
    match template::load_dir(dir) {
        Ok(found) => {
            for t in found.iter() {
                templates.insert(t.clone());
            }
            Ok(templates)
        }
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::bail!("invalid dialplan templates:\n  {}", list.join("\n  "))
        }
    }
}

/// The store `config` asks for: Redis at `REDIS_URL`, else in memory.
async fn connect_store(config: &Config) -> anyhow::Result<Store> {
    Ok(match &config.redis_url {
        Some(url) => {
            let options = RedisOptions {
                wait_replicas: config.redis_wait_replicas,
                wait_timeout: config.redis_wait_timeout,
                tls_ca_file: config.redis_tls_ca_file.clone(),
                tls_cert_file: config.redis_tls_cert_file.clone(),
                tls_key_file: config.redis_tls_key_file.clone(),
                ..RedisOptions::new(&config.redis_prefix, config.retention)
            };
            Store::Redis(
                RedisStore::connect_with(url.expose(), &options)
                    .await
                    .context("cannot use REDIS_URL")?,
            )
        }
        None => Store::Memory(MemoryStore::new(config.retention)),
    })
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on LISTEN_ADDR {}", config.listen_addr))?;
        let addr = listener.local_addr()?;
        if config.public_url_is_default {
            config.public_url = Url::parse(&format!("http://{addr}"))?;
        }
        let metrics_listener = match config.metrics_addr {
            Some(a) => Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on METRICS_ADDR {a}"))?,
            ),
            None => None,
        };
        let prometheus = m::install();
        metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "mode" => if config.is_sandbox() { "sandbox" } else { "live" })
            .set(1.0);

        let mut sim = None;
        if config.is_sandbox() {
            let callees = match &config.sim.callees_file {
                Some(path) => Callees::from_file(path)
                    .with_context(|| format!("SIM_CALLEES_FILE {}", path.display()))?,
                None => Callees::default(),
            };
            let mut settings = SimSettings::new(config.sim.time_scale);
            settings.callees = callees;
            settings.tones = config.sim.tones;
            let handle = Simulator::start(settings, SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .context("cannot start the carrier simulator")?;
            let (app_id, app_secret) = handle.credentials();
            config.routee.api_url = handle.base_url();
            config.routee.auth_url = handle.auth_url();
            config.routee.app_id = Some(app_id);
            config.routee.app_secret = Some(Secret::new(app_secret));
            sim = Some(handle);
        }
        // The sandbox without a Voiceflow key serves a simulated assistant, so the
        // Voiceflow-driven path works without an account too.
        let mut sim_voiceflow = None;
        if config.is_sandbox()
            && config.voiceflow.api_key.is_none()
            && config.voiceflow_urls_are_default
        {
            let handle = SimVoiceflow::start(
                SimVoiceflowSettings::new(),
                SocketAddr::from(([127, 0, 0, 1], 0)),
            )
            .await
            .context("cannot start the simulated Voiceflow assistant")?;
            config.voiceflow.runtime_url = handle.base_url();
            config.voiceflow.api_url = handle.base_url();
            sim_voiceflow = Some(handle);
        }

        let store = connect_store(&config).await?;
        let templates = Arc::new(load_templates(&config.dialplans_dir)?);
        let routee = RouteeClient::new(RouteeClientConfig {
            api_url: config.routee.api_url.clone(),
            auth_url: config.routee.auth_url.clone(),
            app_id: config.routee.app_id.clone().unwrap_or_default(),
            app_secret: config
                .routee
                .app_secret
                .clone()
                .unwrap_or_else(|| Secret::new(String::new())),
            connect_timeout: config.upstream_connect_timeout,
            timeout: config.upstream_timeout,
        })?;
        let voiceflow = VoiceflowClient::new(VoiceflowClientConfig {
            runtime_url: config.voiceflow.runtime_url.clone(),
            api_url: config.voiceflow.api_url.clone(),
            connect_timeout: config.upstream_connect_timeout,
            timeout: config.upstream_timeout,
        })?;
        let signer = Signer::new(&config.gateway_secret, config.previous_secret.as_ref())
            .with_next_secret(config.next_secret.as_ref())
            .with_notify_secret(config.notify_secret.as_ref());
        let assistants = Assistants::new(store.clone(), signer.clone());
        let settings = EngineSettings {
            public_url: config.public_url.clone(),
            caller_id: config.routee.from.clone(),
            webhook_deadline: config.webhook_deadline,
            timing: Timing {
                collect_grace: config.collect_grace,
                carrier_outage_limit: config.carrier_outage_limit,
                unconfirmed_window: config.unconfirmed_window,
                ..Timing::default()
            },
            call_interval: Duration::from_secs_f64(1.0 / config.routee.calls_per_second),
            timer_poll: config.timer_poll,
            allow_private_urls: config.allow_private_urls,
            replica_id: format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple()),
            max_calls_per_day: config.max_calls_per_day,
            max_calls_per_day_per_key: config.max_calls_per_day_per_key,
            person_limits: config.person_limits,
            carrier_time_scale: config.sim.time_scale,
        };
        if sim_voiceflow.is_some() {
            register_sandbox_assistant(&assistants, &voiceflow).await?;
        }
        if let Some(key) = &config.voiceflow.api_key {
            register_default_assistant(&config, &assistants, &voiceflow, key).await?;
        }
        match store.backfill_assistant_users().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(count = n, "calling callouts recorded with their assistants"),
            Err(e) => {
                tracing::warn!(error = %e, "could not record calling callouts with their assistants; deleting an assistant may not see callouts from before this version")
            }
        }
        match assistants.reencrypt_all().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                count = n,
                "re-encrypted stored Voiceflow keys with the current GATEWAY_SECRET"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not re-encrypt stored Voiceflow keys; they are re-encrypted when used")
            }
        }
        let engine = Engine::new(
            store, routee, voiceflow, assistants, signer, templates, settings,
        )?;
        let state = AppState::new(engine, Arc::new(config), prometheus.clone(), sim.clone());
        Ok(Application {
            listener,
            metrics_listener,
            state,
            sim,
            sim_voiceflow,
            shutdown: CancellationToken::new(),
            prometheus,
        })
    }

    /// The address the HTTP server listens on (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn public_url(&self) -> &Url {
        &self.state.config.public_url
    }

    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The carrier simulator (sandbox mode only).
    pub fn simulator(&self) -> Option<&SimHandle> {
        self.sim.as_ref()
    }

    /// The simulated Voiceflow assistant (sandbox without a Voiceflow key only).
    pub fn simulated_voiceflow(&self) -> Option<&SimVoiceflowHandle> {
        self.sim_voiceflow.as_ref()
    }

    /// Cancel it to shut down gracefully (what SIGTERM does).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then shuts down in order.
    pub async fn run(self) -> anyhow::Result<()> {
        let Application {
            listener,
            metrics_listener,
            state,
            sim,
            sim_voiceflow,
            shutdown,
            prometheus,
        } = self;
        let engine = state.engine.clone();
        let grace = state.config.shutdown_grace;
        let jobs = Jobs::start(engine.clone(), prometheus.clone())
            .await
            .context("cannot start periodic jobs")?;
        engine.refresh_gauges().await;

        let timer_stop = CancellationToken::new();
        let timers = {
            let engine = engine.clone();
            let stop = timer_stop.clone();
            tokio::spawn(async move { engine.run_timers(stop).await })
        };
        let schedules = tokio::spawn(crate::http::schedules::run(
            state.clone(),
            timer_stop.clone(),
        ));

        // SIGTERM (the token): fail readiness, stop claiming work, then stop serving.
        let http_stop = CancellationToken::new();
        {
            let (state, shutdown, http_stop, timer_stop) = (
                state.clone(),
                shutdown.clone(),
                http_stop.clone(),
                timer_stop.clone(),
            );
            tokio::spawn(async move {
                shutdown.cancelled().await;
                tracing::info!("shutting down: readiness off, timers stopped, draining requests");
                state.draining.store(true, Ordering::Relaxed);
                timer_stop.cancel();
                tokio::time::sleep(grace.min(Duration::from_secs(1))).await;
                http_stop.cancel();
            });
        }

        let limits = crate::http::serve::ServerLimits {
            header_read_timeout: state.config.http_header_timeout,
            max_header_bytes: state.config.http_max_header_bytes,
            max_connections: state.config.http_max_connections,
            max_connections_per_ip: state.config.http_max_connections_per_ip,
        };
        let router = crate::http::router(state.clone());
        let metrics_server = metrics_listener.map(|l| {
            let router = crate::http::metrics_router(state.clone());
            let stop = http_stop.clone();
            tokio::spawn(crate::http::serve::serve(l, router, limits, stop))
        });
        crate::http::serve::serve(listener, router, limits, http_stop.clone()).await?;
        if let Some(m) = metrics_server {
            let _ = m.await;
        }
        let _ = timers.await;
        let _ = schedules.await;
        jobs.shutdown().await;
        engine.tasks().close();
        if tokio::time::timeout(grace, engine.tasks().wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "background work still running after the grace period; the store has what is needed to resume it"
            );
        }
        if let Some(sim) = sim {
            sim.shutdown().await;
        }
        if let Some(vf) = sim_voiceflow {
            vf.shutdown().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Registers (or refreshes) the simulated assistant as `sandbox`, through the
/// same checks as any registration.
async fn register_sandbox_assistant(
    assistants: &Assistants,
    voiceflow: &VoiceflowClient,
) -> anyhow::Result<()> {
    let key = Secret::new("VF.DM.sandbox.simulated-assistant".to_owned());
    let settings = SettingsChange {
        save_transcripts: Some(true),
        ..SettingsChange::default()
    };
    assistants
        .ensure(voiceflow, SANDBOX_ASSISTANT, key, "production", settings)
        .await
        .context("cannot register the simulated assistant")?;
    Ok(())
}

/// Registers (or refreshes: same id, settings kept) the assistant `default`
/// from `VOICEFLOW_API_KEY` and `VOICEFLOW_VERSION`, checked like any
/// registration. A key or version Voiceflow refuses is a configuration error:
/// live mode refuses to start, the sandbox logs it and starts. Voiceflow being
/// unreachable never stops the gateway (every replica would crash-loop through
/// an outage): the error is logged and any `default` registered earlier is kept.
async fn register_default_assistant(
    config: &Config,
    assistants: &Assistants,
    voiceflow: &VoiceflowClient,
    key: &Secret<String>,
) -> anyhow::Result<()> {
    let version = &config.voiceflow.version;
    let result = assistants
        .ensure(
            voiceflow,
            DEFAULT_ASSISTANT,
            key.clone(),
            version,
            SettingsChange::default(),
        )
        .await;
    match result {
        Ok(registered) => {
            for warning in &registered.warnings {
                tracing::warn!(warning = %warning, "assistant `default` registered with a warning");
            }
            tracing::info!(assistant_id = %registered.assistant.id, %version, "assistant `default` registered from VOICEFLOW_API_KEY");
            Ok(())
        }
        Err(RegistryError::Store(e)) => Err(e).context("cannot register the assistant `default`"),
        Err(e @ (RegistryError::Invalid(_) | RegistryError::StoredKey(..)))
            if !config.is_sandbox() =>
        {
            Err(anyhow::anyhow!(
                "VOICEFLOW_API_KEY / VOICEFLOW_VERSION: the assistant `default` cannot be registered: {e}"
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, %version, "the assistant `default` (VOICEFLOW_API_KEY) could not be registered or refreshed; any earlier registration is kept");
            Ok(())
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "replica".into())
}
