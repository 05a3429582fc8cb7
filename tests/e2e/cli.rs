//! The `ferry` binary as the admin client: tables, `--json`, CSV sync,
//! one-line errors with a non-zero exit code, and `jobs watch` following a
//! real transfer.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_control::api;
use ferry_zoomsim::{Mp4Layout, SyntheticMedia};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout};

use crate::support::*;
use crate::transfer::transfers;

pub(crate) fn ferry(daemon_url: &str, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry-under-test"))
        .args(args)
        .env_clear()
        .env("FERRY_SERVER", daemon_url)
        .env("FERRY_TOKEN", token)
        .output()
        .expect("run ferry")
}

pub(crate) fn json(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "ferry failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

// Multi-threaded: the client runs as a blocking child process while the
// daemon serves on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_client_drives_the_control_plane() {
    let daemon = TestDaemon::start().await.unwrap();
    let url = daemon.grpc_url();
    let created = json(&ferry(
        &url,
        OPERATOR_TOKEN,
        &["institutions", "create", "CLI University", "--json"],
    ));
    let institution = created["institution_id"].as_str().unwrap().to_string();
    let key = json(&ferry(
        &url,
        OPERATOR_TOKEN,
        &["keys", "create", "--institution", &institution, "--json"],
    ));
    let admin_key = key["secret"].as_str().unwrap().to_string();
    assert!(admin_key.starts_with("fak_"));

    let config = json(&ferry(
        &url,
        &admin_key,
        &["configurations", "create", "Main", "--json"],
    ));
    let token = config["configuration_token"].as_str().unwrap();
    assert!(token.starts_with("fzc_"));
    let installed = json(&ferry(
        &url,
        &admin_key,
        &[
            "accounts",
            "install",
            "--configuration-token",
            token,
            "--account",
            "acct-9",
            "--plan",
            "business",
            "--json",
        ],
    ));
    assert_eq!(installed["plan"], "business");

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "email,alternate_zoom_email,display_name,role,external_id\n\
         Elisa@Example.edu,elisa.zoom@example.edu,Elisa,instructor,e1\n\
         broken,,Broken,student,e2\n\
         sam@example.edu,,Sam,student,e3\n",
    )
    .unwrap();
    let summary = json(&ferry(
        &url,
        &admin_key,
        &[
            "users",
            "sync",
            csv.to_str().unwrap(),
            "--mode",
            "full",
            "--json",
        ],
    ));
    assert_eq!(summary["applied"], 2);
    assert_eq!(summary["rejected"][0]["line"], 3);
    let found = json(&ferry(
        &url,
        &admin_key,
        &["users", "lookup", "ELISA.ZOOM@example.edu", "--json"],
    ));
    assert_eq!(found["external_id"], "e1");

    let table = ferry(&url, &admin_key, &["users", "list"]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.lines().next().unwrap().starts_with("USER_ID"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3, "header and two users: {text}");
    let jobs = json(&ferry(
        &url,
        &admin_key,
        &["jobs", "list", "--state", "skipped", "--json"],
    ));
    assert_eq!(jobs, serde_json::json!([]));

    // Errors: one line on stderr, non-zero exit.
    let failed = ferry(&url, &admin_key, &["institutions", "create", "Nope"]);
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("PermissionDenied"), "{stderr}");
    let missing = ferry(
        &url,
        &admin_key,
        &["users", "sync", "/nonexistent/users.csv"],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/users.csv"));
    assert!(!Path::new("/nonexistent").exists());
    let _ = daemon.stop().await;
}

/// The institution an admin key belongs to.
async fn institution_id(admin: &mut ferry_daemon::cli::client::Clients) -> String {
    admin
        .institutions
        .get_institution(api::GetInstitutionRequest::default())
        .await
        .unwrap()
        .into_inner()
        .institution_id
}

/// `ferry jobs watch` as a child process whose stdout is a pipe, so not a
/// terminal. Killed when dropped, should the test fail half way.
struct Watcher {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    // Held open: a closed stderr would break the child's error output.
    _stderr: Lines<BufReader<ChildStderr>>,
}

impl Watcher {
    /// Starts the watch and waits until the daemon has subscribed it.
    async fn start(daemon_url: &str, institution_id: &str, extra_args: &[&str]) -> Watcher {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-under-test"))
            .args(["jobs", "watch", "--institution", institution_id])
            .args(extra_args)
            .env_clear()
            .env("FERRY_SERVER", daemon_url)
            .env("FERRY_TOKEN", OPERATOR_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run ferry jobs watch");
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let banner = tokio::time::timeout(Duration::from_secs(20), stderr.next_line())
            .await
            .expect("ferry jobs watch subscribes within 20 s")
            .unwrap();
        assert!(
            banner
                .as_deref()
                .is_some_and(|l| l.starts_with("watching jobs")),
            "{banner:?}"
        );
        Watcher {
            child,
            stdout,
            _stderr: stderr,
        }
    }

    /// Lines up to and including the first that `last` accepts.
    async fn lines_until(&mut self, deadline: Instant, last: impl Fn(&str) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(left, self.stdout.next_line())
                .await
                .unwrap_or_else(|_| panic!("no final line in time; saw {lines:#?}"))
                .unwrap()
                .unwrap_or_else(|| panic!("ferry jobs watch ended early; saw {lines:#?}"));
            let done = last(&line);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    async fn kill(mut self) {
        self.child.kill().await.expect("kill ferry jobs watch");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_watch_shows_a_transfer_in_progress_and_how_it_ended() {
    let mut t = transfers(|_| {}).await;
    let url = t.scene.daemon.grpc_url();
    let institution_id = institution_id(&mut t.scene.admin).await;
    let mut plain = Watcher::start(&url, &institution_id, &[]).await;
    let mut json = Watcher::start(&url, &institution_id, &["--json"]).await;

    // At least 4 s at 4 MiB/s: long enough for a progress line 3 s in.
    let media = SyntheticMedia::mp4(16 * MIB, Duration::from_secs(600), Mp4Layout::FastStart, 0);
    let meeting = t.meeting(&media, media.len(), |b| {
        b.throttle_bytes_per_sec = Some(4 * MIB)
    });
    let started = Instant::now();
    let job_id = t.scene.ingest(&meeting).await.job_id;
    let deadline = started + Duration::from_secs(60);
    let printed = plain
        .lines_until(deadline, |l| {
            l.starts_with("completed") && l.contains(&job_id)
        })
        .await;
    let elapsed = started.elapsed();
    let done = t.wait_final(&job_id).await;
    assert_eq!(
        done.state,
        api::JobState::Completed as i32,
        "{}",
        done.message
    );

    assert!(
        printed.iter().all(|l| !l.contains('\x1b')),
        "no escape codes in a pipe: {printed:#?}"
    );
    let mine: Vec<&str> = printed
        .iter()
        .map(String::as_str)
        .filter(|l| l.contains(&job_id))
        .collect();
    let progress: Vec<&str> = mine
        .iter()
        .copied()
        .filter(|l| l.contains(" of "))
        .collect();
    assert!(mine[0].starts_with("queued "), "{mine:#?}");
    assert!(
        mine[1].starts_with("transferring ") && mine[1].contains(&meeting.topic),
        "{mine:#?}"
    );
    assert!(!progress.is_empty(), "a progress line: {mine:#?}");
    for line in &progress {
        assert!(
            line.starts_with("transferring ")
                && line.contains(" of 16.0 MiB (")
                && line.contains(" MiB/s, ")
                && line.ends_with(" left"),
            "{line}"
        );
    }
    assert!(
        progress.len() as u64 <= elapsed.as_secs() / 3 + 1,
        "at most one progress line per 3 s: {mine:#?} in {elapsed:?}"
    );
    let last = mine.last().unwrap();
    assert!(
        last.ends_with(&format!("16.0 MiB as media {}", done.media_id)),
        "{last}"
    );
    assert_eq!(mine.len(), 3 + progress.len(), "{mine:#?}");

    // --json: one object per event, the whole job in each.
    let events: Vec<serde_json::Value> = json
        .lines_until(deadline, |l| {
            l.contains(&job_id) && l.contains(r#""state":"completed""#)
        })
        .await
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .filter(|e: &serde_json::Value| e["job"]["job_id"] == job_id.as_str())
        .collect();
    let changes: Vec<&str> = events
        .iter()
        .filter(|e| e["progress_only"] == false)
        .map(|e| e["job"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["queued", "transferring", "completed"]);
    assert!(
        events.iter().any(|e| e["progress_only"] == true
            && e["job"]["bytes_transferred"].as_u64().unwrap() > 0
            && e["job"]["total_bytes"] == 16 * MIB),
        "{events:#?}"
    );

    // --job on a finished job: prints how it ended and stops by itself.
    let one = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-under-test"))
        .args(["jobs", "watch", "--institution", &institution_id])
        .args(["--job", &job_id])
        .env_clear()
        .env("FERRY_SERVER", &url)
        .env("FERRY_TOKEN", OPERATOR_TOKEN)
        .kill_on_drop(true)
        .output();
    let one = tokio::time::timeout(Duration::from_secs(20), one)
        .await
        .expect("a watch of a finished job ends by itself")
        .unwrap();
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let text = String::from_utf8(one.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("completed ") && text.contains(&job_id),
        "{text}"
    );

    // jobs get: the job's attempts, structured with --json, one phrase each
    // in a table.
    let institution_flag = ["--institution", institution_id.as_str()];
    let get = |extra: &[&str]| {
        let mut args = vec!["jobs", "get", job_id.as_str()];
        args.extend_from_slice(&institution_flag);
        args.extend_from_slice(extra);
        ferry(&url, OPERATOR_TOKEN, &args)
    };
    let got = self::json(&get(&["--json"]));
    let attempts = got["attempts"].as_array().expect("attempts").clone();
    assert_eq!(attempts.len(), 1, "{got:#}");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["resumed_from_bytes"], 0);
    assert!(
        attempts[0]["worker_id"]
            .as_str()
            .unwrap()
            .starts_with("ferry-")
    );
    let table = String::from_utf8(get(&[]).stdout).unwrap();
    let line = table
        .lines()
        .find(|l| l.starts_with("attempts "))
        .unwrap_or_else(|| panic!("an attempts line: {table}"));
    assert!(line.contains("#1 from byte 0 by ferry-"), "{line}");

    plain.kill().await;
    json.kill().await;
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_started_mid_transfer_shows_the_transfer_at_once() {
    let mut t = transfers(|_| {}).await;
    let url = t.scene.daemon.grpc_url();
    let institution_id = institution_id(&mut t.scene.admin).await;
    // At least 8 s at 2 MiB/s: the watches start well inside it.
    let media = SyntheticMedia::mp4(16 * MIB, Duration::from_secs(600), Mp4Layout::FastStart, 0);
    let meeting = t.meeting(&media, media.len(), |b| {
        b.throttle_bytes_per_sec = Some(2 * MIB)
    });
    let job_id = t.scene.ingest(&meeting).await.job_id;
    let mut jobs = t.scene.admin.jobs.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = jobs
            .get_job(api::GetJobRequest {
                job_id: job_id.clone(),
                institution_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        if job.state == api::JobState::Transferring as i32 {
            break;
        }
        assert!(Instant::now() < deadline, "the job never started: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The API: the stream opens with the running transfer, then goes on
    // with its changes.
    let mut watch = jobs
        .watch_jobs(api::WatchJobsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(2), watch.message())
        .await
        .expect("the snapshot comes at once")
        .unwrap()
        .expect("an event");
    let job = first.job.expect("a job");
    assert!(first.snapshot && !first.progress_only);
    assert_eq!(job.job_id, job_id);
    assert_eq!(job.state, api::JobState::Transferring as i32);

    // The CLI: its first line is the transfer, not silence until it ends.
    let mut plain = Watcher::start(&url, &institution_id, &[]).await;
    let lines = plain
        .lines_until(Instant::now() + Duration::from_secs(3), |l| {
            l.contains(&job_id)
        })
        .await;
    assert!(
        lines.last().unwrap().starts_with("transferring "),
        "{lines:#?}"
    );

    let completed = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = watch.message().await.unwrap() {
            let job = event.job.unwrap();
            if job.job_id == job_id && job.state == api::JobState::Completed as i32 {
                return event.snapshot;
            }
        }
        panic!("the watch ended before the job completed");
    })
    .await
    .expect("the live events follow the snapshot");
    assert!(!completed, "a change is not a snapshot");
    let done = t.wait_final(&job_id).await;
    assert_eq!(
        done.state,
        api::JobState::Completed as i32,
        "{}",
        done.message
    );
    plain.kill().await;
    let _ = t.scene.daemon.stop().await;
}

/// `ferry ARGS` as the scene's admin: exit status, stdout, stderr.
fn admin_ferry(url: &str, key: &str, args: &[&str]) -> (bool, String, String) {
    let output = ferry(url, key, args);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_backfill_is_refused_without_credentials_then_runs_watched_listed_and_cancelled() {
    use crate::reconcile::{add_credentials, cloud_recording, scene};
    use ferry_zoomsim::downloads::DownloadServer;

    let zoom = DownloadServer::start().await.unwrap();
    let mut scene = scene(&zoom, |_| {}).await;
    let url = scene.daemon.grpc_url();
    let key = scene.admin_key.clone();
    let day = 86_400_000;
    let from = ferry_control::model::Day::of(ferry_control::model::Timestamp(
        scene.installed_at.0 - 9 * day,
    ))
    .to_string();
    let to = ferry_control::model::Day::of(scene.installed_at).to_string();
    let backfill = [
        "accounts", "backfill", ACCOUNT, "--from", &from, "--to", &to,
    ];

    // No API credentials yet: one line naming what is missing, non-zero exit.
    let (ok, _, stderr) = admin_ferry(&url, &key, &backfill);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("FailedPrecondition") && stderr.contains("has no API credentials"),
        "{stderr}"
    );

    let token = scene.configuration_token.clone();
    add_credentials(&mut scene.admin, &token, &zoom).await;
    for days in [5, 8] {
        cloud_recording(
            &zoom,
            ACCOUNT,
            "Elisa@Example.edu",
            ferry_control::model::Timestamp(scene.installed_at.0 - days * day),
            true,
        );
    }
    // --watch in a pipe: a line per change, then the backfill as it ended.
    let (ok, stdout, stderr) = admin_ferry(&url, &key, &[&backfill[..], &["--watch"]].concat());
    assert!(ok, "{stderr}");
    let backfill_id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("backfill_id"))
        .map(|rest| rest.trim().to_string())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with(&format!("{backfill_id}: ")) && line.contains(" days ")),
        "progress lines: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["state", "completed"])),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["jobs_created", "2"])),
        "{stdout}"
    );

    let got = json(&ferry(
        &url,
        &key,
        &["accounts", "backfill", "get", &backfill_id, "--json"],
    ));
    assert_eq!(got["state"], "completed");
    assert_eq!(got["meetings_seen"], 2);
    assert_eq!(got["duplicates"], 0);
    let jobs = json(&ferry(
        &url,
        &key,
        &["jobs", "list", "--source", "backfill", "--json"],
    ));
    assert_eq!(jobs.as_array().unwrap().len(), 2);

    // A backfill held up by Zoom's 429s is still running when cancelled.
    zoom.fail_list_with_429(1000, Some(30));
    let started = json(&ferry(&url, &key, &[&backfill[..], &["--json"]].concat()));
    let running_id = started["backfill_id"].as_str().unwrap().to_string();
    assert_eq!(started["state"], "running");
    let cancelled = json(&ferry(
        &url,
        &key,
        &["accounts", "backfill", "cancel", &running_id, "--json"],
    ));
    assert_eq!(cancelled["state"], "cancelled");
    let (ok, _, stderr) = admin_ferry(&url, &key, &["accounts", "backfill", "cancel", &running_id]);
    assert!(!ok && stderr.contains("FailedPrecondition"), "{stderr}");

    let table = ferry(&url, &key, &["accounts", "backfill", "list"]);
    let text = String::from_utf8(table.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("BACKFILL_ID"), "{text}");
    assert_eq!(lines.len(), 3, "header and two backfills: {text}");
    assert!(
        lines[1].contains("completed") && lines[2].contains("cancelled"),
        "{text}"
    );
    let _ = scene.daemon.stop().await;
}
