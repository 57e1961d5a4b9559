//! Database metrics: query latency through sea-orm's metric callback, and pool use sampled when
//! `/metrics` is scraped.
//!
//! The registry holds pools weakly: each pool's probe lives in its connection's metric callback,
//! so a dropped connection closes as it would without metrics (tests open and drop many).

use std::sync::{Arc, Mutex, Weak};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use sea_orm::{DatabaseConnection, DatabaseConnectionType};

use crate::metrics::{ModuleLabels, PoolLabels, db_query_metrics};

/// A handle on one connection pool, to read its use.
enum PoolProbe {
    Postgres(sea_orm::sqlx::PgPool),
    Sqlite(sea_orm::sqlx::SqlitePool),
}

/// One pool's use at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PoolUse {
    num_idle: i64,
    num_in_use: i64,
    max_connections: i64,
}

impl PoolProbe {
    fn of(db: &DatabaseConnection) -> Option<Self> {
        match &db.inner {
            DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
                Some(Self::Postgres(db.get_postgres_connection_pool().clone()))
            }
            DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
                Some(Self::Sqlite(db.get_sqlite_connection_pool().clone()))
            }
            _ => None,
        }
    }

    fn sample(&self) -> PoolUse {
        let (size, num_idle, max_connections) = match self {
            Self::Postgres(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
            Self::Sqlite(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
        };
        let num_idle = i64::try_from(num_idle).unwrap_or(i64::MAX);
        PoolUse {
            num_idle,
            // Read apart from `size`, so an acquire in between may make idle exceed it.
            num_in_use: (i64::from(size) - num_idle).max(0),
            max_connections: i64::from(max_connections),
        }
    }
}

struct WatchedPool {
    module: String,
    probe: Weak<PoolProbe>,
}

static WATCHED_POOLS: Mutex<Vec<WatchedPool>> = Mutex::new(Vec::new());

fn watched_pools() -> std::sync::MutexGuard<'static, Vec<WatchedPool>> {
    // A panic while holding the lock leaves the list itself intact.
    WATCHED_POOLS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Times every statement `db` runs under `module` (`ward_db_query_duration_seconds`, failures
/// in `ward_db_query_errors_total`) and reports its pool in `ward_db_pool_connections`.
pub fn instrument_database(module: &str, db: &mut DatabaseConnection) {
    let module_label = module.replace(' ', "_");
    let (histogram, errors) = db_query_metrics(&module_label);
    let probe_opt = PoolProbe::of(db).map(Arc::new);
    if let Some(probe) = &probe_opt {
        let mut pools = watched_pools();
        pools.retain(|pool| pool.probe.strong_count() > 0);
        pools.push(WatchedPool {
            module: module_label,
            probe: Arc::downgrade(probe),
        });
    }
    db.set_metric_callback(move |info| {
        // Keeps the probe alive exactly as long as the connection.
        let _probe = &probe_opt;
        histogram.observe(info.elapsed.as_secs_f64());
        if info.failed {
            errors.inc();
        }
    });
}

/// Sets the pool gauges from every live pool, summed per module.
pub(super) fn sample_pools(
    connections: &Family<PoolLabels, Gauge>,
    max_connections: &Family<ModuleLabels, Gauge>,
) {
    let mut use_by_module: Vec<(String, PoolUse)> = Vec::new();
    {
        let mut pools = watched_pools();
        pools.retain(|pool| pool.probe.strong_count() > 0);
        for pool in pools.iter() {
            let Some(probe) = pool.probe.upgrade() else {
                continue;
            };
            let sampled = probe.sample();
            let index_opt = use_by_module
                .iter()
                .position(|(module, _)| *module == pool.module);
            match index_opt {
                Some(index) => {
                    let total = &mut use_by_module[index].1;
                    total.num_idle += sampled.num_idle;
                    total.num_in_use += sampled.num_in_use;
                    total.max_connections += sampled.max_connections;
                }
                None => use_by_module.push((pool.module.clone(), sampled)),
            }
        }
    }
    // A module whose pools all closed disappears rather than reporting stale figures.
    connections.clear();
    max_connections.clear();
    for (module, pool_use) in use_by_module {
        for (state, num_connections) in
            [("idle", pool_use.num_idle), ("in_use", pool_use.num_in_use)]
        {
            let labels = PoolLabels {
                module: module.clone(),
                state,
            };
            connections.get_or_create(&labels).set(num_connections);
        }
        max_connections
            .get_or_create(&ModuleLabels { module })
            .set(pool_use.max_connections);
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use super::*;
    use crate::metrics::render;

    #[tokio::test]
    async fn a_pool_is_reported_while_its_connection_lives_and_queries_are_timed() {
        let mut options = sea_orm::ConnectOptions::new("sqlite::memory:");
        options.max_connections(3).min_connections(1);
        let mut db = sea_orm::Database::connect(options).await.unwrap();
        instrument_database("test pool", &mut db);
        let statement = |sql: &str| Statement::from_string(DbBackend::Sqlite, sql);
        db.execute_raw(statement("SELECT 1")).await.unwrap();
        let failed = db.execute_raw(statement("SELECT nonsense()")).await;
        assert!(failed.is_err());

        let text = render();

        assert!(
            text.contains("ward_db_pool_max_connections{module=\"test_pool\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("ward_db_pool_connections{module=\"test_pool\",state=\"idle\"}"));
        assert!(text.contains("ward_db_query_duration_seconds_count{module=\"test_pool\"} 2\n"));
        assert!(text.contains("ward_db_query_errors_total{module=\"test_pool\"} 1\n"));

        drop(db);
        let after_drop = render();
        assert!(!after_drop.contains("ward_db_pool_max_connections{module=\"test_pool\"}"));
    }
}
