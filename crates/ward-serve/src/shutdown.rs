//! The graceful stop. On the first SIGTERM or SIGINT a process:
//!
//! 1. answers `/readyz` with 503 ("shutting down") on every listener, yet keeps serving for
//!    `server.drain_secs`, so a load balancer or peer that has not noticed yet gets answers, not
//!    resets;
//! 2. closes its listeners and lets in-flight HTTP and gRPC requests finish;
//! 3. lets each consumer finish the batch it is applying (a batch is one database transaction,
//!    so even a batch cut short by the deadline is rolled back whole, never half applied);
//! 4. flushes its outbox relays: everything committed before is sent to the event log;
//! 5. exits, all within `server.shutdown_grace_secs` of the signal (ECS sends SIGKILL after its
//!    stop timeout, 30 s by default).
//!
//! A second signal, or a stop that overruns the grace period, exits at once with code 1.

use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::{Next, from_fn};
use actix_web::web::{self, ServiceConfig};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use ward_bus::health::Health;
use ward_core::config::ServerOptions;
use ward_core::{WardError, WardResult};

use crate::modules::Worker;

/// How long past the grace period a stuck stop may run before the process exits regardless.
const OVERRUN_MARGIN: Duration = Duration::from_secs(1);

/// The exit code when a second signal or an overrun ends the process before its stop is done.
const FORCED_EXIT_CODE: i32 = 1;

/// The steps of a stop, in order; each is logged once, as it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Draining,
    FinishingRequests,
    FinishingBatches,
    FlushingOutbox,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::Draining => "not ready; still serving while load balancers move away",
            Phase::FinishingRequests => "listeners closed; finishing in-flight requests",
            Phase::FinishingBatches => "consumers finishing their current event batch",
            Phase::FlushingOutbox => "flushing the outbox to the event log",
        }
    }

    fn log(self, clock: &StopClock) {
        tracing::info!(
            phase = ?self,
            doing = self.describe(),
            remaining_millis = clock.remaining().as_millis() as u64,
            "shutting down"
        );
    }
}

/// The timing of one stop, counted from the first signal.
#[derive(Debug, Clone, Copy)]
pub struct StopClock {
    started: Instant,
    drain: Duration,
    grace: Duration,
}

impl StopClock {
    /// Starts the clock now, with `server.drain_secs` and `server.shutdown_grace_secs`.
    pub fn start(server: &ServerOptions) -> Self {
        Self::starting_at(
            Instant::now(),
            Duration::from_secs(server.drain_secs),
            Duration::from_secs(server.shutdown_grace_secs),
        )
    }

    fn starting_at(started: Instant, drain: Duration, grace: Duration) -> Self {
        Self {
            started,
            drain,
            grace,
        }
    }

    /// When the drain window ends; never after the deadline, whatever the settings say.
    pub fn drain_end(&self) -> Instant {
        self.started + self.drain.min(self.grace)
    }

    /// When the stop must be over.
    pub fn deadline(&self) -> Instant {
        self.started + self.grace
    }

    /// Time left until the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }

    fn elapsed_millis(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// SIGTERM and SIGINT, registered once at start-up: from then on neither kills the process by
/// default, and a second signal during the stop is not missed.
pub struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub fn install() -> WardResult<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| {
                signal(kind)
                    .map_err(|error| WardError::internal(&format!("listening for {name}"), error))
            };
            Ok(Self {
                terminate: listen(SignalKind::terminate(), "SIGTERM")?,
                interrupt: listen(SignalKind::interrupt(), "SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next signal and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => "SIGTERM",
                _ = self.interrupt.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}

/// Wraps the public listener's routes so that, once the process is stopping, every response
/// closes its connection: a client then never reuses a keep-alive connection that the listener
/// is about to close (a request sent on it just then would get no answer at all).
pub fn closing_connections_when_stopping<F>(
    health: Health,
    api_config: F,
) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static
where
    F: Fn(&mut ServiceConfig) + Clone + Send + 'static,
{
    move |cfg: &mut ServiceConfig| {
        let health = health.clone();
        let close = from_fn(move |request: ServiceRequest, next: Next<BoxBody>| {
            close_connection_when_stopping(health.clone(), request, next)
        });
        cfg.service(web::scope("").wrap(close).configure(api_config.clone()));
    }
}

async fn close_connection_when_stopping(
    health: Health,
    request: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut response = next.call(request).await?;
    if health.is_stopping() {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}

/// From the first signal on: a second signal, or the stop outrunning its grace period, ends the
/// process at once (ECS would SIGKILL it soon anyway; exiting says why in the log).
pub fn exit_on_second_signal_or_overrun(mut signals: StopSignals, clock: StopClock) {
    tokio::spawn(async move {
        tokio::select! {
            signal = signals.recv() => {
                tracing::warn!(signal, "second signal: exiting now, abandoning the stop");
            }
            () = tokio::time::sleep_until(clock.deadline() + OVERRUN_MARGIN) => {
                tracing::error!(
                    grace_secs = clock.grace.as_secs(),
                    "the stop overran server.shutdown_grace_secs: exiting now"
                );
            }
        }
        std::process::exit(FORCED_EXIT_CODE);
    });
}

/// The background loops of a process, grouped by when they stop: consumers and the revocation
/// feed before the relays, so events a consumer's last batch enqueued are flushed too.
#[derive(Default)]
pub struct RunningWorkers {
    batches_cancel: CancellationToken,
    batch_tasks: Vec<JoinHandle<()>>,
    outbox_cancel: CancellationToken,
    relay_tasks: Vec<JoinHandle<()>>,
}

impl RunningWorkers {
    pub fn start(workers: Vec<Worker>, poll_interval: Duration) -> Self {
        let mut running = Self::default();
        for worker in workers {
            if matches!(worker, Worker::Relay(_)) {
                let task = worker.spawn(running.outbox_cancel.clone(), poll_interval);
                running.relay_tasks.push(task);
            } else {
                let task = worker.spawn(running.batches_cancel.clone(), poll_interval);
                running.batch_tasks.push(task);
            }
        }
        running
    }
}

/// The listeners that take requests, and how to close them.
#[derive(Default)]
pub struct RunningListeners {
    /// The public HTTP server; its graceful stop finishes in-flight requests and closes idle
    /// keep-alive connections.
    pub http_handle_opt: Option<actix_web::dev::ServerHandle>,
    /// Fired to close the gRPC listener; in-flight calls finish, clients get GOAWAY.
    pub grpc_cancel: CancellationToken,
    pub grpc_task_opt: Option<JoinHandle<WardResult<()>>>,
}

/// Runs phases 1 to 4; returns an error naming the phase that ran out of time, if one did.
pub async fn stop_in_order(
    clock: StopClock,
    health: &Health,
    listeners: RunningListeners,
    workers: RunningWorkers,
) -> WardResult<()> {
    health.begin_stopping();
    Phase::Draining.log(&clock);
    tokio::time::sleep_until(clock.drain_end()).await;

    Phase::FinishingRequests.log(&clock);
    let requests_done = finish_requests(listeners, clock.deadline()).await;

    Phase::FinishingBatches.log(&clock);
    workers.batches_cancel.cancel();
    let batches_done = join_until(workers.batch_tasks, clock.deadline()).await;

    Phase::FlushingOutbox.log(&clock);
    workers.outbox_cancel.cancel();
    let outbox_done = join_until(workers.relay_tasks, clock.deadline()).await;

    let mut unfinished = Vec::new();
    for (is_done, what) in [
        (requests_done, "in-flight requests"),
        (
            batches_done,
            "event batches (rolled back, applied again on the next start)",
        ),
        (
            outbox_done,
            "the outbox flush (the rest is sent on the next start)",
        ),
    ] {
        if !is_done {
            unfinished.push(what);
        }
    }
    if unfinished.is_empty() {
        tracing::info!(elapsed_millis = clock.elapsed_millis(), "shutdown complete");
        return Ok(());
    }
    Err(WardError::Unavailable(format!(
        "the stop ran out of server.shutdown_grace_secs ({} s) before finishing: {}",
        clock.grace.as_secs(),
        unfinished.join(", ")
    )))
}

/// Closes both listeners at once and waits, until `deadline`, for their requests to finish.
async fn finish_requests(listeners: RunningListeners, deadline: Instant) -> bool {
    let RunningListeners {
        http_handle_opt,
        grpc_cancel,
        grpc_task_opt,
    } = listeners;
    grpc_cancel.cancel();
    let http_stopped = async {
        match http_handle_opt {
            Some(http_handle) => tokio::time::timeout_at(deadline, http_handle.stop(true))
                .await
                .is_ok(),
            None => true,
        }
    };
    let grpc_stopped = async {
        let Some(grpc_task) = grpc_task_opt else {
            return true;
        };
        match tokio::time::timeout_at(deadline, grpc_task).await {
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "the gRPC server stopped with an error");
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    };
    let (is_http_done, is_grpc_done) = tokio::join!(http_stopped, grpc_stopped);
    is_http_done && is_grpc_done
}

/// Waits for every task until `deadline`, then aborts those still running; true when all ended
/// on their own. An aborted consumer drops its open transaction, which rolls the batch back.
async fn join_until(tasks: Vec<JoinHandle<()>>, deadline: Instant) -> bool {
    let mut all_done = true;
    for mut task in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
            all_done = false;
        }
    }
    all_done
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use ward_bus::health::SHUTDOWN_COMPONENT;

    use super::*;

    fn clock(drain_secs: u64, grace_secs: u64) -> StopClock {
        StopClock::starting_at(
            Instant::now(),
            Duration::from_secs(drain_secs),
            Duration::from_secs(grace_secs),
        )
    }

    /// A task that, once `cancel` fires, takes `work` to finish and then notes `name`.
    fn worker_task(
        cancel: &CancellationToken,
        work: Duration,
        name: &'static str,
        done: &Arc<Mutex<Vec<&'static str>>>,
    ) -> JoinHandle<()> {
        let cancel = cancel.clone();
        let done = done.clone();
        tokio::spawn(async move {
            cancel.cancelled().await;
            tokio::time::sleep(work).await;
            done.lock().unwrap().push(name);
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_never_outlasts_the_grace_period() {
        let start = Instant::now();
        assert_eq!(clock(2, 10).drain_end() - start, Duration::from_secs(2));
        assert_eq!(clock(30, 10).drain_end() - start, Duration::from_secs(10));
        assert_eq!(clock(0, 10).drain_end(), start);
        let stop = clock(2, 10);
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(stop.remaining(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn join_until_aborts_what_outlives_the_deadline() {
        let done = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let quick = worker_task(&cancel, Duration::from_secs(1), "quick", &done);
        let stuck = worker_task(&cancel, Duration::from_secs(60), "stuck", &done);
        cancel.cancel();

        let all_done =
            join_until(vec![quick, stuck], Instant::now() + Duration::from_secs(5)).await;

        assert!(!all_done);
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            *done.lock().unwrap(),
            vec!["quick"],
            "the stuck task was aborted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_then_batches_then_the_outbox_each_start_after_the_last_ended() {
        // Arrange: a gRPC server, a consumer and a relay that each take a while to stop.
        let health = Health::default();
        let done = Arc::new(Mutex::new(Vec::new()));
        let listeners = RunningListeners::default();
        let grpc_cancel = listeners.grpc_cancel.clone();
        let grpc_done = done.clone();
        let listeners = RunningListeners {
            grpc_task_opt: Some(tokio::spawn(async move {
                grpc_cancel.cancelled().await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                grpc_done.lock().unwrap().push("grpc");
                Ok(())
            })),
            ..listeners
        };
        let mut workers = RunningWorkers::default();
        let consumer = worker_task(
            &workers.batches_cancel,
            Duration::from_secs(2),
            "consumer",
            &done,
        );
        workers.batch_tasks.push(consumer);
        let relay = worker_task(
            &workers.outbox_cancel,
            Duration::from_secs(1),
            "relay",
            &done,
        );
        workers.relay_tasks.push(relay);
        let started = Instant::now();

        // Act
        let stopping = tokio::spawn({
            let health = health.clone();
            async move { stop_in_order(clock(2, 25), &health, listeners, workers).await }
        });
        tokio::time::sleep(Duration::from_millis(1_500)).await;

        // Assert: during the drain the process is not ready and nothing has stopped yet.
        let report = health.report();
        assert!(!report.ready);
        assert!(
            report
                .components
                .iter()
                .any(|(name, _)| name == SHUTDOWN_COMPONENT)
        );
        assert!(done.lock().unwrap().is_empty());
        stopping.await.unwrap().unwrap();
        assert_eq!(*done.lock().unwrap(), vec!["grpc", "consumer", "relay"]);
        assert_eq!(started.elapsed(), Duration::from_secs(2 + 3 + 2 + 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_that_runs_out_of_time_says_what_it_left() {
        let health = Health::default();
        let done = Arc::new(Mutex::new(Vec::new()));
        let mut workers = RunningWorkers::default();
        let relay = worker_task(
            &workers.outbox_cancel,
            Duration::from_secs(60),
            "relay",
            &done,
        );
        workers.relay_tasks.push(relay);
        let started = Instant::now();

        let error = stop_in_order(clock(1, 5), &health, RunningListeners::default(), workers)
            .await
            .unwrap_err();

        assert_eq!(started.elapsed(), Duration::from_secs(5));
        let message = error.to_string();
        assert!(message.contains("outbox"), "{message}");
        assert!(!message.contains("requests"), "{message}");
    }
}
