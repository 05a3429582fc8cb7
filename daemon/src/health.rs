//! Whether this daemon can serve: it can while its store answers. A watch
//! pings the store every second and, on every change, flips gRPC health
//! (`grpc.health.v1`, every service and the server as a whole) and
//! `GET /healthz` between serving and not serving, so that a load balancer
//! sends no traffic to a replica whose database is out of reach, and takes
//! it back by itself when the database returns. It never fails the daemon.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_control::service::SERVICE_NAMES;
use ferry_control::store::Store;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How often the store is pinged, and how long a ping may take.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The daemon's serving state, shared by the gRPC health service and `/healthz`.
#[derive(Debug, Default)]
pub struct Health {
    store_unreachable: AtomicBool,
}

impl Health {
    pub fn serving(&self) -> bool {
        !self.store_unreachable.load(Ordering::Relaxed)
    }
}

/// Sets every gRPC health status to `status`.
pub async fn report(reporter: &HealthReporter, status: ServingStatus) {
    for name in SERVICE_NAMES {
        reporter.set_service_status(name, status).await;
    }
    reporter.set_service_status("", status).await;
}

/// Pings the store until `shutdown`, reporting each change of reachability.
pub async fn watch(
    store: Arc<dyn Store>,
    health: Arc<Health>,
    reporter: HealthReporter,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(PING_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let reachable = matches!(
            tokio::time::timeout(PING_TIMEOUT, store.ping()).await,
            Ok(Ok(()))
        );
        let was_reachable = !health.store_unreachable.swap(!reachable, Ordering::Relaxed);
        if reachable == was_reachable {
            continue;
        }
        if reachable {
            tracing::info!("the store answers again: serving");
            report(&reporter, ServingStatus::Serving).await;
        } else {
            tracing::warn!("the store does not answer: not serving until it does");
            report(&reporter, ServingStatus::NotServing).await;
        }
    }
}
