//! `ward serve`: bind, build, start, watch readiness, stop in order.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{App, HttpServer};
use tokio_util::sync::CancellationToken;
use ward_bus::health::{ComponentState, Health};
use ward_core::config::{Config, Profile};
use ward_core::{Role, WardError, WardResult};

use crate::modules::{Node, ReadyCheck, build_node};
use crate::shutdown::{
    RunningListeners, RunningWorkers, StopClock, StopSignals, closing_connections_when_stopping,
    exit_on_second_signal_or_overrun, stop_in_order,
};
use crate::{ServeOptions, demo};

const READINESS_INTERVAL: Duration = Duration::from_secs(2);
const STARTUP: &str = "startup";
const KEY_WAIT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the configured roles until SIGINT or SIGTERM; returns an error if start-up fails.
pub async fn serve(config: Config, options: ServeOptions) -> WardResult<()> {
    let roles = config.roles.resolved();
    if options.demo && config.profile == Profile::Production {
        return Err(WardError::invalid_field(
            "--demo",
            "--demo creates an account with a published password; it is refused in the production profile",
        ));
    }
    log_plan(&config, &roles);
    ward_bus::metrics::set_build_info(&role_names(&roles));

    // Bind before any slow start-up work, so a taken port fails at once.
    let ops_listener = bind("ops", config.server.ops_addr)?;
    let http_listener_opt = if roles.contains(&Role::Gateway) {
        Some(bind("http", config.server.http_addr)?)
    } else {
        None
    };
    let grpc_listener_opt = if roles.iter().any(|role| role.owns_database()) {
        Some(bind("grpc", config.server.grpc_addr)?)
    } else {
        None
    };

    let mut signals = StopSignals::install()?;
    // Ops first: while the process waits for what it needs, /livez answers and /readyz says why
    // it is not ready.
    let health = Health::default();
    health.register(STARTUP);
    let grace_secs = config.server.shutdown_grace_secs;
    let ops_config = ward_gateway::ops_config(health.clone());
    let ops_server = HttpServer::new(move || App::new().configure(ops_config.clone()))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(grace_secs)
        .listen(ops_listener)
        .map_err(|error| listen_error("ops", error))?
        .run();
    let ops_handle = ops_server.handle();
    let ops_task = tokio::spawn(ops_server);

    let started = tokio::select! {
        started = start_node(&config, &roles, &health, options.demo) => Some(started),
        _ = signals.recv() => None,
    };
    let (node, demo_result) = match started {
        Some(Ok(started)) => started,
        Some(Err(error)) => {
            ops_handle.stop(false).await;
            return Err(error);
        }
        None => {
            tracing::info!("stopped before start-up completed");
            ops_handle.stop(true).await;
            return Ok(());
        }
    };
    if let Err(error) = demo_result {
        ops_handle.stop(false).await;
        return Err(error);
    }

    let cancel = CancellationToken::new();
    let poll_interval = Duration::from_millis(config.events.poll_interval_millis);
    let Node {
        services,
        workers,
        ready_checks,
        local_grpc,
    } = node;
    let running_workers = RunningWorkers::start(workers, poll_interval);
    for (component, _) in &ready_checks {
        health.register(component);
    }
    let monitor = tokio::spawn(watch_readiness(
        health.clone(),
        ready_checks,
        cancel.clone(),
    ));

    let mut listeners = RunningListeners::default();
    if let Some(grpc_listener) = grpc_listener_opt {
        grpc_listener
            .set_nonblocking(true)
            .map_err(|error| listen_error("grpc", error))?;
        let grpc_listener = tokio::net::TcpListener::from_std(grpc_listener)
            .map_err(|error| listen_error("grpc", error))?;
        listeners.grpc_task_opt = Some(tokio::spawn(crate::grpc_server::serve_grpc(
            grpc_listener,
            local_grpc,
            services.tokens.clone(),
            listeners.grpc_cancel.clone(),
        )));
    }

    let mut http_task_opt = None;
    if let Some(http_listener) = http_listener_opt {
        let gateway_options = ward_gateway::GatewayOptions {
            cors_allowed_origins: config.server.cors_allowed_origins.clone(),
            trusted_proxies: config.server.trusted_proxy_nets(),
            require_if_match: config.patients.require_if_match,
        };
        let api_config = closing_connections_when_stopping(
            health.clone(),
            ward_gateway::api_config(services.clone(), health.clone(), gateway_options),
        );
        let http_server = HttpServer::new(move || App::new().configure(api_config.clone()))
            .disable_signals()
            .shutdown_timeout(grace_secs)
            .listen(http_listener)
            .map_err(|error| listen_error("http", error))?
            .run();
        listeners.http_handle_opt = Some(http_server.handle());
        http_task_opt = Some(tokio::spawn(http_server));
    }
    tracing::info!(roles = %role_names(&roles), "ward started");

    let stop_reason = wait_for_stop(&mut signals, http_task_opt.as_mut()).await;
    tracing::info!(reason = stop_reason, "stopping");

    // Ops last, so health checks see the process (live, not ready) until the end.
    let clock = StopClock::start(&config.server);
    exit_on_second_signal_or_overrun(signals, clock);
    let stopped = stop_in_order(clock, &health, listeners, running_workers).await;
    cancel.cancel();
    let _ = monitor.await;
    ops_handle.stop(true).await;
    let _ = ops_task.await;
    tracing::info!("stopped");
    stopped
}

/// Waits for what start-up needs from outside, then opens the local modules and loads demo data.
async fn start_node(
    config: &Config,
    roles: &[Role],
    health: &Health,
    demo: bool,
) -> WardResult<(Node, WardResult<()>)> {
    wait_for_public_key(config, roles, health).await;
    let node = build_node(config, roles).await?;
    let demo_result = if demo {
        demo::load(&node.services, roles).await
    } else {
        Ok(())
    };
    Ok((node, demo_result))
}

/// A process without the auth role verifies tokens with the auth role's public key. Until that
/// file exists the process stays live and not ready, and says what it waits for.
async fn wait_for_public_key(config: &Config, roles: &[Role], health: &Health) {
    if roles.contains(&Role::Auth) {
        return;
    }
    let path = &config.auth.public_key_file;
    let mut logged = false;
    while !path.is_file() {
        let reason = format!(
            "waiting for auth.public_key_file {} (the auth role's public key; copy it here, or start the auth role)",
            path.display()
        );
        if !logged {
            tracing::warn!(waiting_for = %reason, "not ready");
            logged = true;
        }
        health.set(STARTUP, ComponentState::NotReady(reason));
        tokio::time::sleep(KEY_WAIT_INTERVAL).await;
    }
}

fn bind(name: &str, addr: std::net::SocketAddr) -> WardResult<TcpListener> {
    let listener = TcpListener::bind(addr).map_err(|error| {
        WardError::Unavailable(format!(
            "cannot listen for {name} on {addr}: {error} (server.{name}_addr)"
        ))
    })?;
    let local_addr = listener
        .local_addr()
        .map_err(|error| WardError::internal("reading a bound address", error))?;
    // Tests bind port 0 and read the real port from this line.
    tracing::info!(listener = name, addr = %local_addr, "listening");
    Ok(listener)
}

fn listen_error(name: &str, error: std::io::Error) -> WardError {
    WardError::Unavailable(format!("cannot serve {name}: {error}"))
}

async fn wait_for_stop(
    signals: &mut StopSignals,
    http_task_opt: Option<&mut tokio::task::JoinHandle<std::io::Result<()>>>,
) -> &'static str {
    let http_stopped = async {
        match http_task_opt {
            Some(task) => {
                let _ = task.await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        signal = signals.recv() => signal,
        () = http_stopped => "http server stopped",
    }
}

/// Probes every component now and then, and logs each change of state once.
async fn watch_readiness(
    health: Health,
    checks: Vec<(String, ReadyCheck)>,
    cancel: CancellationToken,
) {
    let mut interval = tokio::time::interval(READINESS_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_states: Vec<Option<ComponentState>> = vec![None; checks.len()];
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = interval.tick() => {}
        }
        probe_all(&health, &checks, &mut last_states).await;
        // Start-up is over once every component has been probed once.
        health.set(STARTUP, ComponentState::Ready);
    }
}

async fn probe_all(
    health: &Health,
    checks: &[(String, ReadyCheck)],
    last_states: &mut [Option<ComponentState>],
) {
    for (index, (component, check)) in checks.iter().enumerate() {
        let state = match check().await {
            Ok(()) => ComponentState::Ready,
            Err(error) => ComponentState::NotReady(error.to_string()),
        };
        if last_states[index].as_ref() != Some(&state) {
            match &state {
                ComponentState::Ready => tracing::info!(component = %component, "ready"),
                ComponentState::NotReady(reason) => {
                    tracing::warn!(component = %component, waiting_for = %reason, "not ready")
                }
            }
            last_states[index] = Some(state.clone());
        }
        health.set(component, state);
    }
}

fn role_names(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|role| role.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Says, once, what runs here and what this process needs from elsewhere.
fn log_plan(config: &Config, roles: &[Role]) {
    let mut remote = Vec::new();
    for role in roles {
        for peer in role.calls() {
            if !roles.contains(peer) && !remote.contains(peer) {
                remote.push(*peer);
            }
        }
    }
    tracing::info!(
        roles = %role_names(roles),
        profile = ?config.profile,
        events = ?config.events.backend,
        "starting"
    );
    for peer in remote {
        let addresses = config.peers.for_role(peer);
        if addresses.is_empty() {
            let reason = crate::peers::missing_peer_reason(peer);
            tracing::warn!(peer = %peer, reason = %reason, "needs a peer");
        } else {
            tracing::info!(peer = %peer, addresses = %addresses.join(","), "reaching a peer over gRPC");
        }
    }
}
