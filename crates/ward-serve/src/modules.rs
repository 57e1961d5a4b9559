//! Opens the modules that run here and builds the [`Services`] a process holds: the module's own
//! service when its role is local, a stand-in for a remote peer otherwise. Nothing else in Ward
//! decides where a module runs.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use ward_auth::{AuthService, AuthSettings};
use ward_bus::consumer::Consumer;
use ward_bus::events::{ALL_TOPICS, EventLogHandle};
use ward_bus::local_log::LocalEventLog;
use ward_bus::outbox::{OutboxRelay, OutboxWaker};
use ward_bus::revocation::RevocationFeed;
use ward_bus::{AnalyticsClient, AuthClient, BillingClient, PatientsClient, Services};
use ward_core::config::{Config, EventBackend};
use ward_core::{Role, WardError, WardResult};

use crate::grpc_server::LocalGrpcServices;
use crate::keys::{load_issuer, load_verifier};
use crate::peers::MissingPeer;

/// How long start-up waits to read the revocations before it serves anyway (the feed goes on).
const REVOCATION_CATCH_UP_LIMIT: Duration = Duration::from_secs(5);

/// A readiness probe for one component.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, WardResult<()>> + Send + Sync>;

/// A background loop: an outbox relay, an event consumer, or the revocation feed.
pub enum Worker {
    Relay(OutboxRelay),
    Consumer(Consumer),
    Revocations(RevocationFeed),
}

impl Worker {
    pub fn spawn(self, cancel: CancellationToken, poll_interval: Duration) -> JoinHandle<()> {
        match self {
            Worker::Relay(relay) => tokio::spawn(relay.run(cancel, poll_interval)),
            Worker::Consumer(consumer) => tokio::spawn(consumer.run(cancel, poll_interval)),
            Worker::Revocations(feed) => tokio::spawn(feed.run(cancel, poll_interval)),
        }
    }
}

/// Everything a process runs, before its listeners start.
pub struct Node {
    pub services: Services,
    pub workers: Vec<Worker>,
    /// `(component, probe)`, for `/readyz`.
    pub ready_checks: Vec<(String, ReadyCheck)>,
    /// The modules that run here, to serve over gRPC to other processes.
    pub local_grpc: LocalGrpcServices,
}

/// Opens every local module (migrating when configured) and wires the rest as remote.
pub async fn build_node(config: &Config, roles: &[Role]) -> WardResult<Node> {
    let migrate = config.database.migrate_on_start;
    let share = (
        config.events.consumer_instance,
        config.events.consumer_instances,
    );
    let mut workers = Vec::new();
    let mut ready_checks: Vec<(String, ReadyCheck)> = Vec::new();
    // Every process verifies tokens, so every process follows the revocations on the log.
    let log = open_event_log(config).await?;
    let probe_log = log.clone();
    ready_checks.push((
        format!("event-log:{}", log.backend_name()),
        Arc::new(move || {
            let log = probe_log.clone();
            Box::pin(async move { log.check_ready().await })
        }),
    ));

    let issuer_opt = if roles.contains(&Role::Auth) {
        Some(load_issuer(config)?)
    } else {
        None
    };
    let tokens = load_verifier(config, roles, issuer_opt.as_ref())?;
    let mut feed = RevocationFeed::new(log.clone(), tokens.revocations().clone());
    // Revocations issued while this process was down count before its first request. A log that
    // cannot answer yet does not stop start-up: the feed retries, and readiness reports the log.
    match tokio::time::timeout(REVOCATION_CATCH_UP_LIMIT, feed.catch_up()).await {
        Ok(Ok(num_read)) => tracing::info!(num_read, "read the revocations on the event log"),
        Ok(Err(error)) => tracing::warn!(%error, "cannot read the revocations yet; retrying"),
        Err(_) => tracing::warn!("the revocations are still loading; continuing in the background"),
    }
    workers.push(Worker::Revocations(feed));
    let revocations = tokens.revocations().clone();
    ready_checks.push((
        "revocations".to_string(),
        Arc::new(move || {
            let is_loaded = revocations.is_loaded();
            Box::pin(async move {
                if is_loaded {
                    Ok(())
                } else {
                    Err(WardError::Unavailable(
                        "still reading the revocations on ward.auth.v1".into(),
                    ))
                }
            })
        }),
    ));

    let auth: AuthClient = match issuer_opt {
        Some(issuer) => {
            let db = open_database(config, Role::Auth, migrate).await?;
            let relay = OutboxRelay::new("auth", db.clone(), log.clone());
            let service = AuthService::open(
                db,
                issuer,
                AuthSettings::from_config(&config.auth),
                relay.waker(),
            )
            .await?
            .with_local_revocations(tokens.revocations().clone());
            workers.push(Worker::Relay(relay));
            Arc::new(service)
        }
        None => match peer_channel(config, Role::Auth).await? {
            Some(channel) => Arc::new(
                ward_auth::AuthGrpcClient::new(channel)
                    .with_addresses(config.peers.for_role(Role::Auth)),
            ),
            None => Arc::new(MissingPeer::new(Role::Auth)),
        },
    };

    let patients: PatientsClient = if roles.contains(&Role::Patients) {
        let db = open_database(config, Role::Patients, migrate).await?;
        let relay = OutboxRelay::new("patients", db.clone(), log.clone());
        let mrn_format = ward_patients::MrnFormat::from_options(&config.patients);
        let service = ward_patients::PatientsService::new(db, relay.waker())
            .with_mrn_format(mrn_format)
            .with_unmerge_window(std::time::Duration::from_secs(
                config.patients.unmerge_window_secs,
            ));
        workers.push(Worker::Relay(relay));
        Arc::new(service)
    } else {
        match peer_channel(config, Role::Patients).await? {
            Some(channel) => Arc::new(
                ward_patients::PatientsGrpcClient::new(channel)
                    .with_addresses(config.peers.for_role(Role::Patients)),
            ),
            None => Arc::new(MissingPeer::new(Role::Patients)),
        }
    };

    let billing: BillingClient = if roles.contains(&Role::Billing) {
        let db = open_database(config, Role::Billing, migrate).await?;
        let relay = OutboxRelay::new("billing", db.clone(), log.clone());
        let waker = relay.waker();
        workers.push(Worker::Relay(relay));
        let consumer =
            ward_billing::patient_events_consumer(db.clone(), log.clone(), waker.clone());
        workers.push(Worker::Consumer(consumer.with_share(share.0, share.1)));
        Arc::new(ward_billing::BillingService::new(db, waker))
    } else {
        match peer_channel(config, Role::Billing).await? {
            Some(channel) => Arc::new(
                ward_billing::BillingGrpcClient::new(channel)
                    .with_addresses(config.peers.for_role(Role::Billing)),
            ),
            None => Arc::new(MissingPeer::new(Role::Billing)),
        }
    };

    let analytics: AnalyticsClient = if roles.contains(&Role::Analytics) {
        let db = open_database(config, Role::Analytics, migrate).await?;
        let consumer = ward_analytics::events_consumer(db.clone(), log.clone());
        workers.push(Worker::Consumer(consumer.with_share(share.0, share.1)));
        Arc::new(ward_analytics::AnalyticsService::new(db))
    } else {
        match peer_channel(config, Role::Analytics).await? {
            Some(channel) => Arc::new(
                ward_analytics::AnalyticsGrpcClient::new(channel)
                    .with_addresses(config.peers.for_role(Role::Analytics)),
            ),
            None => Arc::new(MissingPeer::new(Role::Analytics)),
        }
    };

    let local_grpc = LocalGrpcServices {
        auth_opt: roles.contains(&Role::Auth).then(|| auth.clone()),
        patients_opt: roles.contains(&Role::Patients).then(|| patients.clone()),
        billing_opt: roles.contains(&Role::Billing).then(|| billing.clone()),
        analytics_opt: roles.contains(&Role::Analytics).then(|| analytics.clone()),
    };
    let services = Services {
        auth,
        patients,
        billing,
        analytics,
        tokens,
    };
    // A local module is probed directly; a remote one the gateway calls is probed as a peer.
    let mut probed = Vec::new();
    for role in roles {
        let is_module = role.owns_database();
        if is_module && !probed.contains(role) {
            probed.push(*role);
            ready_checks.push((role.to_string(), probe(&services, *role)));
        }
        for peer in role.calls() {
            if !roles.contains(peer) && !probed.contains(peer) {
                probed.push(*peer);
                ready_checks.push((format!("peer:{peer}"), probe(&services, *peer)));
            }
        }
    }
    Ok(Node {
        local_grpc,
        services,
        workers,
        ready_checks,
    })
}

/// A gRPC channel to `role`'s configured peers, or `None` when none are configured.
async fn peer_channel(
    config: &Config,
    role: Role,
) -> WardResult<Option<tonic::transport::Channel>> {
    let addresses = config.peers.for_role(role);
    if addresses.is_empty() {
        return Ok(None);
    }
    ward_bus::grpc::connect_peer(role, addresses)
        .await
        .map(Some)
}

fn probe(services: &Services, role: Role) -> ReadyCheck {
    let services = services.clone();
    Arc::new(move || {
        let services = services.clone();
        Box::pin(async move {
            match role {
                Role::Auth => services.auth.check_ready().await,
                Role::Patients => services.patients.check_ready().await,
                Role::Billing => services.billing.check_ready().await,
                Role::Analytics => services.analytics.check_ready().await,
                Role::Gateway => Ok(()),
            }
        })
    })
}

/// Opens the configured event log. A Kafka broker that is down does not fail start-up: the log
/// connects on first use, and readiness says it waits for the brokers.
pub async fn open_event_log(config: &Config) -> WardResult<EventLogHandle> {
    match config.events.backend {
        EventBackend::Local => {
            let log = LocalEventLog::open(&config.events.local_url).await?;
            Ok(Arc::new(log))
        }
        EventBackend::Kafka => Ok(Arc::new(
            ward_kafka::KafkaEventLog::connect_lazy(
                &config.events.brokers,
                config.events.partitions,
                config.events.replication_factor,
            )
            .with_security(ward_kafka::KafkaSecurity::from_options(&config.events)),
        )),
    }
}

/// Opens the event log for `ward migrate`, which should fail at once when the brokers are away.
pub(crate) async fn open_event_log_now(config: &Config) -> WardResult<EventLogHandle> {
    match config.events.backend {
        EventBackend::Local => open_event_log(config).await,
        EventBackend::Kafka => Ok(Arc::new(
            ward_kafka::KafkaEventLog::connect_lazy(
                &config.events.brokers,
                config.events.partitions,
                config.events.replication_factor,
            )
            .with_security(ward_kafka::KafkaSecurity::from_options(&config.events))
            .connected()
            .await?,
        )),
    }
}

/// Connects to a module's database, migrating it when asked.
pub async fn open_database(
    config: &Config,
    role: Role,
    migrate: bool,
) -> WardResult<DatabaseConnection> {
    let Some(url) = config.database.url_for(role) else {
        return Err(WardError::internal(
            "wiring",
            format!("{role} owns no database"),
        ));
    };
    let db = ward_bus::db::connect(url, role.as_str()).await?;
    if migrate {
        run_migrations(config, role, &db).await?;
    }
    Ok(db)
}

async fn run_migrations(config: &Config, role: Role, db: &DatabaseConnection) -> WardResult<()> {
    match role {
        Role::Auth => AuthService::migrate(db).await,
        Role::Patients => {
            // Patients already stored are numbered in the configured format.
            let mrn_format = ward_patients::MrnFormat::from_options(&config.patients);
            ward_patients::PatientsService::migrate_with(db, &mrn_format).await
        }
        Role::Billing => ward_billing::BillingService::migrate(db).await,
        Role::Analytics => ward_analytics::AnalyticsService::migrate(db).await,
        Role::Gateway => Ok(()),
    }
}

/// Opens the auth module alone (for `ward user create`).
pub async fn open_auth(config: &Config, roles: &[Role], migrate: bool) -> WardResult<AuthService> {
    let issuer = load_issuer(config)?;
    debug_assert!(roles.contains(&Role::Auth));
    let db = open_database(config, Role::Auth, migrate).await?;
    // Account creation writes no events, so nothing needs to relay this process's outbox.
    AuthService::open(
        db,
        issuer,
        AuthSettings::from_config(&config.auth),
        OutboxWaker::default(),
    )
    .await
}

/// `ward migrate`: runs each local module's migrations and prepares the event log's topics.
pub async fn migrate(config: &Config) -> WardResult<Vec<String>> {
    let roles = config.roles.resolved();
    let mut done = Vec::new();
    for role in &roles {
        if role.owns_database() {
            open_database(config, *role, true).await?;
            done.push(format!(
                "{role}: migrated {}",
                config
                    .database
                    .url_for(*role)
                    .map(|url| url.redacted())
                    .unwrap_or_default()
            ));
        }
    }
    let log = open_event_log_now(config).await?;
    log.ensure_topics(&ALL_TOPICS).await?;
    done.push(format!(
        "event log ({}): topics {}",
        log.backend_name(),
        ALL_TOPICS.join(", ")
    ));
    Ok(done)
}
