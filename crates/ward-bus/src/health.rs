//! Readiness of the parts a process depends on, kept current by the wiring and read by `/readyz`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// The component a stopping process reports, so `/readyz` says why it is not ready.
pub const SHUTDOWN_COMPONENT: &str = "shutdown";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentState {
    Ready,
    /// Not ready, with what it waits for.
    NotReady(String),
}

/// A shared, cheap-to-clone readiness board. Components start not ready until first checked.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<RwLock<BTreeMap<String, ComponentState>>>,
    is_stopping: Arc<AtomicBool>,
}

/// A snapshot for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub ready: bool,
    pub components: Vec<(String, ComponentState)>,
}

impl Health {
    pub fn register(&self, component: &str) {
        self.set(component, ComponentState::NotReady("starting".into()));
    }

    pub fn set(&self, component: &str, state: ComponentState) {
        let mut components = match self.components.write() {
            Ok(guard) => guard,
            // A panic elsewhere while holding the lock must not take readiness down with it.
            Err(poisoned) => poisoned.into_inner(),
        };
        components.insert(component.to_string(), state);
    }

    /// Marks the process as stopping: not ready from now on, whatever its components say.
    pub fn begin_stopping(&self) {
        self.is_stopping.store(true, Ordering::SeqCst);
        self.set(
            SHUTDOWN_COMPONENT,
            ComponentState::NotReady("shutting down".into()),
        );
    }

    /// Whether [`Health::begin_stopping`] was called (responses then ask clients to reconnect).
    pub fn is_stopping(&self) -> bool {
        self.is_stopping.load(Ordering::SeqCst)
    }

    /// Ready when at least one component is registered and all are ready.
    pub fn report(&self) -> HealthReport {
        let components = match self.components.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let entries: Vec<(String, ComponentState)> = components
            .iter()
            .map(|(name, state)| (name.clone(), state.clone()))
            .collect();
        let ready = !entries.is_empty()
            && entries
                .iter()
                .all(|(_, state)| *state == ComponentState::Ready);
        HealthReport {
            ready,
            components: entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_is() {
        let health = Health::default();
        assert!(!health.report().ready);
        health.register("patients");
        assert!(!health.report().ready);
        health.set("patients", ComponentState::Ready);
        assert!(health.report().ready);
        health.set(
            "peer:billing",
            ComponentState::NotReady("no peers.billing".into()),
        );
        assert!(!health.report().ready);
    }

    #[test]
    fn a_stopping_process_stays_not_ready_and_says_so() {
        let health = Health::default();
        health.set("patients", ComponentState::Ready);
        assert!(!health.is_stopping());

        health.begin_stopping();
        // A readiness probe that runs on during the stop does not make it ready again.
        health.set("patients", ComponentState::Ready);

        let report = health.report();
        assert!(health.is_stopping());
        assert!(!report.ready);
        assert!(report.components.contains(&(
            SHUTDOWN_COMPONENT.to_string(),
            ComponentState::NotReady("shutting down".into())
        )));
    }
}
