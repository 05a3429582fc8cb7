//! Directory capacity: SyncUsers of 100,000 users, LookupUserByEmail
//! throughput, and LookupUsersByEmail throughput in emails/s (batches of
//! 100 and of 1,000), against the real `ferry` daemon as a separate process
//! on loopback, first with SQLite on disk, then with PostgreSQL (a throwaway
//! cluster on loopback, fsync and synchronous commit on).
//!
//! Run: `cargo bench -p ferry-benches --bench directory` (both stores), or
//! `... --bench directory -- --store postgres` (or `sqlite`) for one.
//! Optional: FERRY_BENCH_USERS (default 100000), FERRY_BENCH_LOOKUP_SECS
//! (default 5), FERRY_BENCH_CONCURRENCY (default 64).
//!
//! The load generator shares the machine's cores with the daemon, so besides
//! the throughput it reports the daemon's own CPU time per lookup (from
//! /proc), which is what capacity planning needs; for the batches, per
//! email. The same single-lookup load also runs against a bare tonic server
//! (`ferry-bench-grpc-floor`: no authentication, no store, the daemon's
//! runtime and socket settings), whose CPU per call is the floor that
//! tonic, HTTP/2, the runtime and loopback TCP cost on this machine; the
//! table reports the daemon's CPU above that floor beside it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_benches::env_number;
use ferry_benches::{per_second, print_table, process_cpu_seconds};
use ferry_control::api;
use ferry_test_support::control_plane::create_institution;
use ferry_test_support::daemon::{DaemonProcess, OPERATOR_TOKEN, connect};
use ferry_test_support::replicas::{SharedStore, borrowed, open_store};
use rand::Rng;

fn main() -> anyhow::Result<()> {
    ferry_benches::block_on(run())
}

fn email_of(i: u64) -> String {
    // Every other user also has an alternate Zoom email; look half of those
    // up by it, in another case than stored.
    if i.is_multiple_of(4) {
        format!("ZOOM{i}@bench.example.edu")
    } else {
        format!("user{i}@bench.example.edu")
    }
}

/// Emails per LookupUsersByEmail call in the batch runs, and their callers.
const BATCH_SMALL: usize = 100;
const BATCH_LARGE: usize = 1000;
const BATCH_CALLERS: usize = 8;
/// HTTP/2 connections the callers share.
const CONNECTIONS: usize = 4;

type UsersClient = api::user_directory_service_client::UserDirectoryServiceClient<
    ferry_daemon::cli::client::AuthChannel,
>;

/// Lookups over gRPC against a server (the daemon or the floor), timed,
/// with that server's CPU.
struct GrpcLoad {
    connections: Vec<UsersClient>,
    server_pid: u32,
    users: u64,
    duration: Duration,
}

/// `ferry-bench-grpc-floor` as a child process, killed when dropped.
struct FloorServer {
    child: std::process::Child,
    url: String,
}

impl FloorServer {
    fn spawn() -> anyhow::Result<Self> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-bench-grpc-floor"))
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let Some(address) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            anyhow::bail!("the floor server said {line:?} instead of its address");
        };
        Ok(Self {
            url: format!("http://{address}"),
            child,
        })
    }
}

impl Drop for FloorServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one run of [`GrpcLoad`] measured.
struct LoadOutcome {
    emails: u64,
    elapsed: Duration,
    server_cpu_seconds: f64,
}

impl LoadOutcome {
    fn emails_per_second(&self) -> f64 {
        per_second(self.emails, self.elapsed)
    }

    fn server_us_per_email(&self) -> f64 {
        self.server_cpu_seconds * 1e6 / self.emails as f64
    }
}

impl GrpcLoad {
    /// The load's HTTP/2 connections to the server at `url`.
    async fn connect(url: &str, key: &str) -> anyhow::Result<Vec<UsersClient>> {
        let mut connections = Vec::new();
        for _ in 0..CONNECTIONS {
            connections.push(connect(url, Some(key)).await?.users);
        }
        Ok(connections)
    }

    /// `callers` loops spread over the connections, each asking about
    /// `batch` random users per call (1: LookupUserByEmail, more:
    /// LookupUsersByEmail) until the duration is up. Every answer is
    /// checked; a wrong or failed one fails the bench.
    async fn run(&self, callers: usize, batch: usize) -> anyhow::Result<LoadOutcome> {
        let done = Arc::new(AtomicU64::new(0));
        let wrong = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + self.duration;
        let server_cpu_before = process_cpu_seconds(self.server_pid)?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for caller in 0..callers {
            let mut client = self.connections[caller % self.connections.len()].clone();
            let (done, wrong, users) = (done.clone(), wrong.clone(), self.users);
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let picked: Vec<u64> = (0..batch)
                        .map(|_| rand::rng().random_range(0..users))
                        .collect();
                    let right = if batch == 1 {
                        lookup_one(&mut client, picked[0]).await
                    } else {
                        lookup_batch(&mut client, &picked).await
                    };
                    if !right {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(batch as u64, Ordering::Relaxed);
                }
            }));
        }
        for task in tasks {
            task.await?;
        }
        let elapsed = started.elapsed();
        let server_cpu_seconds = process_cpu_seconds(self.server_pid)? - server_cpu_before;
        let wrong = wrong.load(Ordering::Relaxed);
        anyhow::ensure!(
            wrong == 0,
            "{wrong} calls of {batch} lookups answered wrong"
        );
        Ok(LoadOutcome {
            emails: done.load(Ordering::Relaxed),
            elapsed,
            server_cpu_seconds,
        })
    }
}

/// LookupUserByEmail for user `i`; true when it answered that user.
async fn lookup_one(client: &mut UsersClient, i: u64) -> bool {
    let found = client
        .lookup_user_by_email(api::LookupUserByEmailRequest {
            institution_id: String::new(),
            email: email_of(i),
        })
        .await;
    matches!(&found, Ok(user) if user.get_ref().external_id == format!("ext-{i}"))
}

/// LookupUsersByEmail for users `picked`; true when every answer is right
/// and in order.
async fn lookup_batch(client: &mut UsersClient, picked: &[u64]) -> bool {
    let emails: Vec<String> = picked.iter().map(|&i| email_of(i)).collect();
    let Ok(found) = client
        .lookup_users_by_email(api::LookupUsersByEmailRequest {
            institution_id: String::new(),
            emails: emails.clone(),
        })
        .await
    else {
        return false;
    };
    let results = &found.get_ref().results;
    results.len() == picked.len()
        && results
            .iter()
            .zip(picked)
            .zip(&emails)
            .all(|((result, i), email)| {
                &result.email == email
                    && result
                        .user
                        .as_ref()
                        .is_some_and(|user| user.external_id == format!("ext-{i}"))
            })
}

async fn run() -> anyhow::Result<()> {
    for kind in ferry_benches::stores_flag()? {
        let store = SharedStore::start(kind)?;
        measure(&store).await?;
    }
    Ok(())
}

/// Sync, then lookups over gRPC and in the store, on `store`; prints the table.
async fn measure(shared_store: &SharedStore) -> anyhow::Result<()> {
    let users = env_number("FERRY_BENCH_USERS", 100_000);
    let lookup_secs = env_number("FERRY_BENCH_LOOKUP_SECS", 5);
    let concurrency = env_number("FERRY_BENCH_CONCURRENCY", 64) as usize;

    let dir = tempfile::tempdir()?;
    let mut env = shared_store.daemon_env().await?;
    env.push(("FERRY_OPERATOR_TOKEN", OPERATOR_TOKEN.into()));
    let daemon = DaemonProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_ferry-bench-daemon")),
        dir.path(),
        &borrowed(&env),
    )?;
    let mut operator = connect(&daemon.grpc_url(), Some(OPERATOR_TOKEN)).await?;
    let institution = create_institution(&mut operator, "Bench University").await?;
    let mut admin = connect(&daemon.grpc_url(), Some(&institution.admin_key)).await?;

    // SyncUsers: one FULL stream, timed from the first message to the summary.
    let header = api::SyncUsersRequest {
        item: Some(api::sync_users_request::Item::Header(
            api::SyncUsersHeader {
                institution_id: String::new(),
                mode: api::SyncMode::Full as i32,
            },
        )),
    };
    let records = (0..users).map(|i| api::SyncUsersRequest {
        item: Some(api::sync_users_request::Item::User(api::UserRecord {
            external_id: format!("ext-{i}"),
            email: format!("User{i}@Bench.example.edu"),
            alternate_zoom_email: if i.is_multiple_of(2) {
                format!("zoom{i}@bench.example.edu")
            } else {
                String::new()
            },
            display_name: format!("User {i}"),
            role: api::UserRole::Instructor as i32,
            ..Default::default()
        })),
    });
    let started = Instant::now();
    let summary = admin
        .users
        .sync_users(tokio_stream::iter(std::iter::once(header).chain(records)))
        .await?
        .into_inner();
    let sync_elapsed = started.elapsed();
    anyhow::ensure!(
        summary.created as u64 == users,
        "sync created {} of {users}",
        summary.created
    );

    // LookupUserByEmail over gRPC: `concurrency` callers on CONNECTIONS HTTP/2
    // connections for `lookup_secs`, random users, every answer checked;
    // then LookupUsersByEmail in batches, fewer callers (a batch is already
    // many lookups in flight).
    let load = GrpcLoad {
        connections: GrpcLoad::connect(&daemon.grpc_url(), &institution.admin_key).await?,
        server_pid: daemon.pid(),
        users,
        duration: Duration::from_secs(lookup_secs),
    };
    let single = load.run(concurrency, 1).await?;
    let batches = [
        (BATCH_SMALL, load.run(BATCH_CALLERS, BATCH_SMALL).await?),
        (BATCH_LARGE, load.run(BATCH_CALLERS, BATCH_LARGE).await?),
    ];
    drop(daemon);

    // The same load against the bare tonic server: the floor.
    let floor_server = FloorServer::spawn()?;
    let floor = GrpcLoad {
        connections: GrpcLoad::connect(&floor_server.url, &institution.admin_key).await?,
        server_pid: floor_server.child.id(),
        users,
        duration: Duration::from_secs(lookup_secs),
    }
    .run(concurrency, 1)
    .await?;
    drop(floor_server);

    // The store's indexed lookup alone (what the webhook intake calls), on
    // the same database.
    let store = open_store(&env, dir.path()).await?;
    let store_done = Arc::new(AtomicU64::new(0));
    let store_deadline = Instant::now() + Duration::from_secs(lookup_secs);
    let started = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..concurrency {
        let (store, store_done, institution_id) = (
            store.clone(),
            store_done.clone(),
            institution.institution_id.clone(),
        );
        callers.push(tokio::spawn(async move {
            while Instant::now() < store_deadline {
                let i = rand::rng().random_range(0..users);
                let email = email_of(i).to_lowercase();
                let user = store
                    .lookup_user_by_email(&institution_id, &email)
                    .await
                    .expect("store lookup");
                assert_eq!(user.map(|u| u.external_id), Some(format!("ext-{i}")));
                store_done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for caller in callers {
        caller.await?;
    }
    let store_elapsed = started.elapsed();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut rows = vec![
        (
            format!("SyncUsers FULL of {users} users (one gRPC stream)"),
            format!("{:.2} s", sync_elapsed.as_secs_f64()),
            "< 10 s".into(),
        ),
        (
            "LookupUserByEmail in the store (indexed, as the intake calls it)".into(),
            format!(
                "{:.0} /s",
                per_second(store_done.load(Ordering::Relaxed), store_elapsed)
            ),
            "> 50,000 /s".into(),
        ),
        (
            "LookupUserByEmail over gRPC, load generator on the same cores".into(),
            format!("{:.0} /s", single.emails_per_second()),
            "> 50,000 /s".into(),
        ),
        (
            "daemon CPU per gRPC lookup".into(),
            format!("{:.1} us", single.server_us_per_email()),
            "<= 15 us".into(),
        ),
        (
            "floor: bare tonic server's CPU per call, same load (no auth, no store)".into(),
            format!("{:.1} us", floor.server_us_per_email()),
            "reference (this machine)".into(),
        ),
        (
            "floor: bare tonic calls/s, load generator on the same cores".into(),
            format!("{:.0} /s", floor.emails_per_second()),
            "reference (this machine)".into(),
        ),
        (
            "daemon CPU per gRPC lookup above the floor (Ferry's own work)".into(),
            format!(
                "{:.1} us",
                single.server_us_per_email() - floor.server_us_per_email()
            ),
            "reference (derived)".into(),
        ),
        (
            format!("gRPC lookups/s the daemon's CPU would sustain on {cores} cores"),
            format!(
                "{:.0} /s",
                cores as f64 * 1e6 / single.server_us_per_email()
            ),
            "reference (derived)".into(),
        ),
    ];
    for (batch, measured) in &batches {
        rows.push((
            format!("LookupUsersByEmail over gRPC, batches of {batch}, {BATCH_CALLERS} callers"),
            format!("{:.0} emails/s", measured.emails_per_second()),
            "reference".into(),
        ));
        rows.push((
            format!("daemon CPU per email in batches of {batch}"),
            format!("{:.2} us", measured.server_us_per_email()),
            "reference".into(),
        ));
    }
    print_table(
        &format!(
            "directory bench, {}: {users} users, {concurrency} concurrent callers, {cores} cores",
            shared_store.describe()
        ),
        &rows,
    );
    Ok(())
}
