//! Directory capacity: SyncUsers of 100,000 users and LookupUserByEmail
//! throughput, against the real `ferry` daemon as a separate process on
//! loopback, first with SQLite on disk, then with PostgreSQL (a throwaway
//! cluster on loopback, fsync and synchronous commit on).
//!
//! Run: `cargo bench -p ferry-benches --bench directory` (both stores), or
//! `... --bench directory -- --store postgres` (or `sqlite`) for one.
//! Optional: FERRY_BENCH_USERS (default 100000), FERRY_BENCH_LOOKUP_SECS
//! (default 5), FERRY_BENCH_CONCURRENCY (default 64).
//!
//! The load generator shares the machine's cores with the daemon, so besides
//! the throughput it reports the daemon's own CPU time per lookup (from
//! /proc), which is what capacity planning needs.

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

    // LookupUserByEmail over gRPC: `concurrency` callers on 4 HTTP/2
    // connections for `lookup_secs`, random users, every answer checked.
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(
            connect(&daemon.grpc_url(), Some(&institution.admin_key))
                .await?
                .users,
        );
    }
    let done = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(lookup_secs);
    let daemon_cpu_before = process_cpu_seconds(daemon.pid())?;
    let started = Instant::now();
    let mut callers = Vec::new();
    for caller in 0..concurrency {
        let mut client = connections[caller % connections.len()].clone();
        let (done, wrong) = (done.clone(), wrong.clone());
        callers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let i = rand::rng().random_range(0..users);
                let found = client
                    .lookup_user_by_email(api::LookupUserByEmailRequest {
                        institution_id: String::new(),
                        email: email_of(i),
                    })
                    .await;
                if !matches!(&found, Ok(user) if user.get_ref().external_id == format!("ext-{i}")) {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for caller in callers {
        caller.await?;
    }
    let grpc_elapsed = started.elapsed();
    let daemon_cpu = process_cpu_seconds(daemon.pid())? - daemon_cpu_before;
    let grpc_lookups = done.load(Ordering::Relaxed);
    anyhow::ensure!(
        wrong.load(Ordering::Relaxed) == 0,
        "{} lookups answered wrong",
        wrong.load(Ordering::Relaxed)
    );
    drop(daemon);

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
    let grpc_rate = per_second(grpc_lookups, grpc_elapsed);
    let daemon_us_per_lookup = daemon_cpu * 1e6 / grpc_lookups as f64;
    print_table(
        &format!(
            "directory bench, {}: {users} users, {concurrency} concurrent callers, {cores} cores",
            shared_store.describe()
        ),
        &[
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
                format!("{grpc_rate:.0} /s"),
                "> 50,000 /s".into(),
            ),
            (
                "daemon CPU per gRPC lookup".into(),
                format!("{daemon_us_per_lookup:.1} us"),
                "reference".into(),
            ),
            (
                format!("gRPC lookups/s the daemon's CPU would sustain on {cores} cores"),
                format!("{:.0} /s", cores as f64 * 1e6 / daemon_us_per_lookup),
                "reference (derived)".into(),
            ),
        ],
    );
    Ok(())
}
