//! PatriotPay server: configuration, HTTP wiring and the domain behind it.
#![forbid(unsafe_code)]

pub mod access;
pub mod accounts;
pub mod alerts;
pub mod anomaly;
pub mod apikeys;
pub mod audit;
pub mod billing;
pub mod cli;
pub mod clock;
pub mod cognito;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod group_commit;
pub mod guarantors;
pub mod http;
pub mod identity;
pub mod ids;
pub mod incident;
pub mod intake;
pub mod keys;
pub mod limits;
pub mod link_admin;
pub mod link_check;
pub mod links;
pub mod locale;
pub mod messages;
pub mod money;
pub mod observe;
pub mod payments;
pub mod pdf;
pub mod phi;
pub mod view_as;

use config::{Config, KeyProviderKind, ProcessorKind};
use crypto::{
    CacheLimits, FieldCrypto, KeyProvider, KmsKeyProvider, KmsSettings, LocalKeyProvider,
};
use db::Db;
use http::AppState;
use payments::sandbox::Sandbox;
use payments::stripe::StripeProcessor;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A started server: its addresses and a handle to stop it.
pub struct Running {
    pub portal_addr: SocketAddr,
    /// Where `/metrics` listens on its own, if it does.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the sandbox's card page listens; with Stripe, the configured address, not bound.
    pub sandbox_addr: SocketAddr,
    pub public_url: String,
    pub state: AppState,
    /// The built-in processor, for tests that make it misbehave or forget (inert with Stripe).
    pub sandbox: Arc<Sandbox>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops both listeners and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Makes the data directory, which holds the key file, secrets and the database: owner only.
fn make_data_dir(cfg: &Config) -> anyhow::Result<()> {
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        dir.mode(0o700);
    }
    dir.create(&cfg.data_dir)?;
    Ok(())
}

/// `patriotpay migrate`: the schema brought up to date as its owner
/// (`PATRIOTPAY_MIGRATE_DATABASE_URL`, else `DATABASE_URL`), then, with
/// `PATRIOTPAY_SERVING_ROLE` (PostgreSQL only), that role granted exactly what serving needs.
/// It needs no key provider: the owner's credentials need not reach the keys.
pub async fn migrate(cfg: &Config) -> anyhow::Result<Option<db::roles::Grants>> {
    make_data_dir(cfg)?;
    let url = match &cfg.migrate_database_url {
        Some(u) => u.expose().to_owned(),
        None => cfg.database_url(),
    };
    let db = Db::connect(&url).await?;
    if cfg.serving_role.is_some() && db.backend() == db::Backend::Sqlite {
        anyhow::bail!("PATRIOTPAY_SERVING_ROLE is for PostgreSQL; SQLite has no roles");
    }
    db.migrate().await?;
    let grants = match &cfg.serving_role {
        Some(role) => Some(db::roles::grant_serving_role(&db, role).await?),
        None => None,
    };
    db.pool().close().await;
    Ok(grants)
}

/// Opens the database and the key provider. The database is migrated first when this
/// connection owns it (SQLite; PostgreSQL with one URL for both roles), else only checked: a
/// serving role refuses to start with migrations pending (`db::Db::migrate_or_check`).
pub async fn open_storage(cfg: &Config) -> anyhow::Result<(Db, Arc<FieldCrypto>)> {
    make_data_dir(cfg)?;
    let db = Db::connect(&cfg.database_url()).await?;
    db.migrate_or_check(cfg.migrate_database_url.is_some())
        .await?;
    let provider: Arc<dyn KeyProvider> = match cfg.key_provider {
        KeyProviderKind::Local => {
            Arc::new(LocalKeyProvider::load_or_create(&cfg.master_key_path())?)
        }
        KeyProviderKind::AwsKms => {
            let key_id = cfg.kms_key_id.clone().ok_or_else(|| {
                anyhow::anyhow!("PATRIOTPAY_KMS_KEY_ID is required with the aws-kms key provider")
            })?;
            Arc::new(
                KmsKeyProvider::connect(&KmsSettings {
                    key_id,
                    region: cfg.aws_region.clone(),
                    endpoint_url: cfg.kms_endpoint_url.clone(),
                    mac_key_id: cfg.audit_mac_key_id.clone(),
                })
                .await,
            )
        }
    };
    let limits = CacheLimits {
        max_age: std::time::Duration::from_secs(cfg.key_cache_max_age_secs),
        max_uses: cfg.key_cache_max_uses,
    };
    let crypto = Arc::new(FieldCrypto::with_limits(db.clone(), provider, limits));
    // Break-glass reasons written in the clear before they were encrypted: sealed now.
    let sealed = accounts::seal_legacy_reasons(&db, &crypto).await?;
    if sealed > 0 {
        tracing::info!(sealed, "break-glass reasons encrypted");
    }
    Ok((db, crypto))
}

pub(crate) fn base_url(configured: &Option<String>, bound: SocketAddr) -> String {
    configured
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"))
        .trim_end_matches('/')
        .to_owned()
}

/// The identity provider the settings choose.
pub async fn identity_provider(
    cfg: &Config,
    db: &db::Db,
    crypto: &Arc<crypto::FieldCrypto>,
) -> anyhow::Result<Arc<dyn identity::IdentityProvider>> {
    Ok(match cfg.identity_provider {
        config::IdentityProviderKind::Local => {
            Arc::new(identity::LocalIdentity::new(db.clone(), crypto.clone()))
        }
        config::IdentityProviderKind::Cognito => Arc::new(identity::CognitoIdentity::new(
            db.clone(),
            crypto.clone(),
            cognito::CognitoProvider::connect(cfg.cognito_settings()?).await,
        )),
    })
}

/// The card processor for a command run outside the server (reconciliation): Stripe, or the
/// sandbox's records.
pub fn processor_for_cli(
    cfg: &Config,
    db: &Db,
) -> anyhow::Result<Arc<dyn payments::PaymentProcessor>> {
    Ok(match cfg.processor {
        ProcessorKind::Stripe => Arc::new(StripeProcessor::new(&cfg.stripe_settings()?)?),
        ProcessorKind::Sandbox => {
            let secrets = cfg.resolve_webhook_secrets()?;
            let url = base_url(&cfg.sandbox_public_url, cfg.sandbox_addr);
            // Its records only: nothing listens and nothing is delivered from here (the serving
            // process's outbox loop delivers what this records).
            Arc::new(Sandbox::new(
                db.clone(),
                url,
                secrets[0].expose().to_owned(),
                cfg.sandbox_settle_secs,
            ))
        }
    })
}

/// How often the server reconciles the ledger with the processor, and over how many days.
const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const RECONCILE_FIRST_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);
const RECONCILE_DAYS: i64 = 3;

/// Serves `router` on `listener` until `stop` turns true.
fn serve_until(
    listener: TcpListener,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    what: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, server = what, "server stopped");
        }
    })
}

/// Binds both listeners and serves until `stop` (or the process ends).
pub async fn start(cfg: &Config) -> anyhow::Result<Running> {
    cfg.check_key_placement()?;
    cfg.check_processor_placement()?;
    let (db, crypto) = open_storage(cfg).await?;
    let webhook_secrets = cfg.resolve_webhook_secrets()?;
    let webhook_secret = webhook_secrets[0].clone();
    // Stripe's settings are checked before anything listens, so a missing key stops the start.
    let stripe = match cfg.processor {
        ProcessorKind::Stripe => Some(StripeProcessor::new(&cfg.stripe_settings()?)?),
        ProcessorKind::Sandbox => None,
    };

    let portal_listener = TcpListener::bind(cfg.addr).await?;
    let portal_addr = portal_listener.local_addr()?;
    // Metrics on their own address: a busy port is logged, not fatal (patients come first).
    observe::handle();
    let metrics_listener = match cfg.monitoring.metrics_addr().map_err(anyhow::Error::msg)? {
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, %addr, "metrics listener not started");
                None
            }
        },
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let public_url = base_url(&cfg.public_url, portal_addr);

    // With Stripe the sandbox's card page is not served at all (it would take the public test
    // card as payment); the handle stays, inert (no listener, no webhook URL), for `Running`.
    let sandbox_listener = match stripe {
        None => Some(TcpListener::bind(cfg.sandbox_addr).await?),
        Some(_) => None,
    };
    let sandbox_addr = match &sandbox_listener {
        Some(l) => l.local_addr()?,
        None => cfg.sandbox_addr,
    };
    let sandbox_url = base_url(&cfg.sandbox_public_url, sandbox_addr);
    let sandbox = Sandbox::new(
        db.clone(),
        sandbox_url,
        webhook_secret.expose().to_owned(),
        cfg.sandbox_settle_secs,
    );
    let processor: Arc<dyn payments::PaymentProcessor> = match stripe {
        Some(stripe) => Arc::new(stripe),
        None => {
            // The sandbox calls the portal directly on its bound address, like Stripe calling
            // our endpoint.
            sandbox.set_webhook_url(format!("http://{portal_addr}/webhooks/stripe"));
            Arc::new(sandbox.clone())
        }
    };

    let identity = identity_provider(cfg, &db, &crypto).await?;
    let crypto_for_poll = crypto.clone();
    let alert_sink = alerts::AlertSink::configured(cfg, Some(crypto.clone()));
    let state = AppState {
        db: db.clone(),
        audit: group_commit::GroupWriter::start(db.clone()),
        crypto,
        processor,
        webhook_secrets: Arc::new(webhook_secrets),
        public_url: public_url.clone(),
        trust_forwarded_for: cfg.trust_forwarded_for,
        link_ttl_days: cfg.link_ttl_days,
        identity_failure_budget: cfg.identity_failure_budget,
        jobs: payments::jobs::Nudge::default(),
        webhook_ack: std::time::Duration::from_millis(cfg.webhook_ack_ms),
        confirm_wait: std::time::Duration::from_millis(cfg.confirm_wait_ms),
        clock: Arc::new(clock::Clock::default()),
        alerts: alert_sink,
        identity,
        data_dir: cfg.data_dir.clone(),
        providers: cfg.messaging.providers(&public_url)?,
        dev_outbox: cfg.messaging.dev_outbox,
        twilio_auth_token: cfg.messaging.webhook_token(),
        metrics_token: cfg.monitoring.metrics_token.clone(),
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let portal = http::portal_router(state.clone());
    let sandbox_router = payments::sandbox::router(sandbox.clone(), public_url.clone());

    let mut tasks = vec![tokio::spawn(observe::upkeep(rx.clone()))];
    if let Some(listener) = metrics_listener {
        let router = http::metrics_router(state.clone());
        tasks.push(serve_until(listener, router, rx.clone(), "metrics"));
    }
    let mut stop = rx.clone();
    tasks.push(tokio::spawn(async move {
        let app = portal.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(portal_listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "portal server stopped");
        }
    }));
    if let Some(sandbox_listener) = sandbox_listener {
        // The sandbox's outbox: retries undelivered events, settles bank debits as they fall due.
        tasks.push(tokio::spawn(sandbox.clone().run(rx.clone())));
        tasks.push(serve_until(
            sandbox_listener,
            sandbox_router,
            rx.clone(),
            "sandbox",
        ));
    }
    // The anomaly rules, every `anomaly_every_secs` (0: off).
    if cfg.monitoring.anomaly_every_secs > 0 {
        let (state, every) = (
            state.clone(),
            std::time::Duration::from_secs(cfg.monitoring.anomaly_every_secs),
        );
        let thresholds = cfg.monitoring.thresholds();
        let mut stop = rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let now = state.clock.now();
                if let Err(e) = anomaly::run(&state.db, &state.alerts, &thresholds, now).await {
                    tracing::warn!(error = %e, "anomaly rules pass failed");
                }
            }
        }));
    }
    // `keys flush-cache` from any process reaches this one within five seconds.
    let poller = crypto_for_poll;
    let mut stop = rx.clone();
    tasks.push(tokio::spawn(async move {
        let _ = poller.poll_flush_epoch().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            poller.evict_expired();
            match poller.poll_flush_epoch().await {
                Ok(true) => tracing::warn!("plaintext key cache flushed on request"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "key cache flush check failed"),
            }
        }
    }));
    // Statement files uploaded by staff and never confirmed: removed once over an hour old,
    // checked every five minutes (and at start, for files left by a stopped server).
    let uploads = http::staff::uploads_dir(&cfg.data_dir);
    let mut stop = rx.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            http::staff::sweep_uploads(uploads.clone()).await;
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(300)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }));
    // The audit chain: committed events sealed every second, the head anchored at start and
    // daily (`audit::chain`).
    tasks.push(tokio::spawn(audit::chain::run(
        db.clone(),
        state.crypto.provider().clone(),
        state.alerts.clone(),
        cfg.audit_anchor_path(),
        rx.clone(),
    )));
    // Processor events the webhook did not finish, and retries falling due.
    let worker = state.clone();
    let mut stop = rx.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let now = worker.clock.now();
            match payments::jobs::run_due(
                &worker.db,
                &worker.audit,
                worker.processor.as_ref(),
                &worker.alerts,
                now,
                50,
            )
            .await
            {
                // A full batch: there may be more due at once.
                Ok(50) => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "processor event worker failed"),
            }
            tokio::select! {
                _ = worker.jobs.wait(std::time::Duration::from_secs(5)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }));
    // The outbox: texts and email delivered as they fall due.
    if cfg.messaging.outbox_every_secs > 0 {
        let outbox = state.clone();
        let every = std::time::Duration::from_secs(cfg.messaging.outbox_every_secs);
        let mut stop = rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let now = outbox.clock.now();
                match messages::worker::run_due(
                    &outbox.db,
                    &outbox.crypto,
                    &outbox.providers,
                    now,
                    50,
                )
                .await
                {
                    // A full batch: there may be more due at once.
                    Ok(p) if p.handled() >= 50 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox worker failed; next look soon"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        }));
    }
    // Balance reminders by text, on each practice's cadence.
    if cfg.messaging.reminders_every_secs > 0 {
        let reminders = state.clone();
        let every = std::time::Duration::from_secs(cfg.messaging.reminders_every_secs);
        let mut stop = rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                let now = reminders.clock.now();
                let s = &reminders;
                if let Err(e) =
                    messages::reminders::run_due(&s.db, &s.crypto, &s.public_url, now).await
                {
                    tracing::warn!(error = %e, "reminders failed; next look later");
                }
            }
        }));
    }
    // Autopay: plan instalments noticed and charged as they fall due.
    if cfg.autopay_every_secs > 0 {
        let autopay = state.clone();
        let every = std::time::Duration::from_secs(cfg.autopay_every_secs);
        let mut stop = rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let now = autopay.clock.now();
                match payments::plans::scheduler::run_due(
                    &autopay.db,
                    &autopay.audit,
                    autopay.processor.as_ref(),
                    &autopay.alerts,
                    now,
                    50,
                )
                .await
                {
                    // A full batch: there may be more due at once.
                    Ok(50) => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "autopay failed; next look soon"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        }));
    }
    // Daily reconciliation of the last few days, alerting on repairs and differences.
    let reconciler = state.clone();
    let mut stop = rx.clone();
    tasks.push(tokio::spawn(async move {
        let mut wait = RECONCILE_FIRST_AFTER;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            wait = RECONCILE_EVERY;
            let now = reconciler.clock.now();
            let window = payments::reconcile::Window {
                since: now - RECONCILE_DAYS * 24 * 3600,
                until: now + 1,
            };
            match payments::reconcile::run_and_alert(
                &reconciler.db,
                &reconciler.audit,
                reconciler.processor.as_ref(),
                &reconciler.alerts,
                window,
                now,
            )
            .await
            {
                Ok(r) => tracing::info!(
                    checkouts = r.checkouts_checked,
                    payments = r.payments_checked,
                    processor_payments = r.processor_payments_checked,
                    processor_refunds = r.processor_refunds_checked,
                    processor_disputes = r.processor_disputes_checked,
                    findings = r.findings.len(),
                    "daily reconciliation done"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "daily reconciliation failed; next run tomorrow")
                }
            }
        }
    }));
    // Expired sessions and failure counters past their windows are swept every ten minutes.
    let store = http::session::DbSessionStore::new(db.clone());
    let mut stop = rx;
    tasks.push(tokio::spawn(async move {
        loop {
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "session sweep failed");
            }
            let now = clock::now_unix();
            if let Err(e) = links::prune_failures(&db, now).await {
                tracing::warn!(error = %e, "identity failure sweep failed");
            }
            if let Err(e) = accounts::prune_login_failures(&db, now).await {
                tracing::warn!(error = %e, "sign-in failure sweep failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(600)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }));
    Ok(Running {
        portal_addr,
        metrics_addr,
        sandbox_addr,
        public_url,
        state,
        sandbox,
        shutdown: tx,
        tasks,
    })
}
