//! `ferry demo --replicas N`: the same demo on N replicas sharing one
//! PostgreSQL database, started the way the tests start theirs (a throwaway
//! cluster: `initdb` into a temporary folder, `pg_ctl start` on a free
//! loopback port, removed when the demo ends). The replicas run in the demo's
//! process, each a whole daemon with its own listeners, database pool and
//! transfer engine, sharing the media folder as replicas of the local sink
//! must; Zoom's webhooks go to them in turn, as through a load balancer, and
//! the final table names the replica that moved each recording, from the
//! workers its job's attempts record.
//!
//! It never touches an existing PostgreSQL server: without PostgreSQL's
//! binaries it stops before starting anything and says what to install.

use std::collections::HashMap;

use anyhow::Context;
use ferry_control::api;
use ferry_control::secrets::{Secret, SecretBox};
use ferry_control::store::postgres_testing::TestCluster;
use ferry_zoomsim::ZoomSimulator;

use crate::app::RunningApp;
use crate::cli::client::Clients;
use crate::config::{Config, StoreBackend};

/// Transfers each replica runs at once: few, so that the demo's handful of
/// recordings spread over the replicas rather than all going to the first
/// one that hears of them.
const MAX_CONCURRENT_PER_REPLICA: usize = 2;

/// The replicas' database, stopped and removed when dropped.
pub struct Database {
    cluster: TestCluster,
}

impl Database {
    /// Finds PostgreSQL's binaries and starts a throwaway cluster, or says
    /// what is missing.
    pub async fn start(replicas: usize) -> anyhow::Result<Database> {
        let cluster = tokio::task::spawn_blocking(TestCluster::try_start)
            .await
            .context("starting PostgreSQL panicked")?
            .with_context(|| {
                format!(
                    "ferry demo --replicas {replicas} runs its replicas on a PostgreSQL cluster \
                     of its own (initdb and pg_ctl; FERRY_PG_BIN may name their folder); \
                     the plain `ferry demo` needs none"
                )
            })?;
        Ok(Database { cluster })
    }

    /// Where it listens, for the demo's first line.
    pub fn describe(&self) -> String {
        format!(
            "PostgreSQL on 127.0.0.1:{} (a throwaway cluster, removed when the demo ends)",
            self.cluster.port()
        )
    }

    /// `config` turned into one replica's: the shared database, one
    /// encryption key for all (they open each other's sealed secrets).
    pub fn replica_config(&self, mut config: Config, encryption_key: &Secret) -> Config {
        config.store.backend = StoreBackend::Postgres;
        config.store.postgres_url = Some(Secret::new(self.cluster.url("postgres")));
        config.encryption_key = Some(encryption_key.clone());
        config.transfer.max_concurrent = MAX_CONCURRENT_PER_REPLICA;
        config
    }
}

/// A fresh key for the replicas of one demo.
pub fn encryption_key() -> Secret {
    SecretBox::generate_key_base64()
}

/// The replicas after the first (which the stage holds), the database under
/// them all, and the names the table gives each replica's worker.
pub struct Fleet {
    pub others: Vec<RunningApp>,
    /// Zoom posting to each of `others`.
    pub zooms: Vec<ZoomSimulator>,
    /// Worker id → "replica N", the first replica's included.
    names: HashMap<String, String>,
    database: Database,
}

impl Fleet {
    pub fn new(
        first: &RunningApp,
        others: Vec<RunningApp>,
        webhook_secret: &str,
        database: Database,
    ) -> Fleet {
        let names = std::iter::once(first)
            .chain(&others)
            .enumerate()
            .filter_map(|(i, app)| Some((app.worker_id.clone()?, format!("replica {}", i + 1))))
            .collect();
        let zooms = others
            .iter()
            .map(|app| ZoomSimulator::new(app.http_addr, webhook_secret))
            .collect();
        Fleet {
            others,
            zooms,
            names,
            database,
        }
    }

    /// The database, for the demo's first line.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Which replicas ran the job's attempts, in order (`replica 2`, or
    /// `replica 1 → replica 3` when one took over from another); `-` for a
    /// job never transferred.
    pub async fn movers(&self, admin: &mut Clients, job_id: &str) -> anyhow::Result<String> {
        let job = admin
            .jobs
            .get_job(api::GetJobRequest {
                job_id: job_id.into(),
                institution_id: String::new(),
            })
            .await?
            .into_inner();
        let mut movers: Vec<&str> = Vec::new();
        for attempt in &job.attempts {
            let name = self
                .names
                .get(&attempt.worker_id)
                .map(String::as_str)
                .with_context(|| {
                    format!(
                        "job {job_id} was transferred by {}, none of the demo's replicas",
                        attempt.worker_id
                    )
                })?;
            if movers.last() != Some(&name) {
                movers.push(name);
            }
        }
        Ok(if movers.is_empty() {
            "-".into()
        } else {
            movers.join(" → ")
        })
    }

    /// Stops the other replicas, then the database.
    pub async fn shutdown(self) {
        for app in self.others {
            app.shutdown().await;
        }
        drop(self.database);
    }
}
