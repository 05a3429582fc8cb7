//! `ferry demo` as CI runs it: the real binary in a fresh working folder,
//! on the embedded defaults, and `ferry demo --replicas 3` on a PostgreSQL
//! cluster of its own. The demo checks every outcome itself; this holds it
//! to its exit code and to a final table with every scenario (and, with
//! replicas, the replica that moved each transferred recording).

use std::process::Stdio;
use std::time::Duration;

/// Every scenario, as the first words of its row.
const SCENARIOS: [&str; 16] = [
    "normal lecture",
    "stop/start session",
    "separately recorded views",
    "host with no matching user",
    "opted-out instructor",
    "copied, then moved to Zoom's trash",
    "recorded before the install",
    "meeting over 8 hours",
    "file over 5 GiB (metadata)",
    "size understated, stopped mid-stream",
    "duplicate delivery",
    "download breaks and resumes",
    "Free-plan account",
    "webhook lost, found by the reconciler",
    "backfilled, 5 days before the install",
    "backfilled, 8 days before the install",
];

/// Well under nextest's limit, so a hung demo fails here with its output.
const DEMO_WITHIN: Duration = Duration::from_secs(240);

/// What one finished run of `ferry demo ARGS` printed, in a fresh folder
/// (kept until the value is dropped).
struct DemoRun {
    dir: tempfile::TempDir,
    stdout: String,
}

impl DemoRun {
    /// Runs the demo and fails unless it exits 0.
    async fn play(args: &[&str]) -> DemoRun {
        let dir = tempfile::tempdir().unwrap();
        let demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-under-test"))
            .arg("demo")
            .args(args)
            .current_dir(dir.path())
            .env_remove("FERRY_SERVER")
            .env_remove("FERRY_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run ferry demo");
        let output = tokio::time::timeout(DEMO_WITHIN, demo.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("ferry demo did not finish within {DEMO_WITHIN:?}"))
            .expect("wait for ferry demo");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "ferry demo exited {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            output.status.code()
        );
        DemoRun { dir, stdout }
    }

    /// The final table's rows, every scenario checked `ok`.
    fn table(&self) -> Vec<&str> {
        let stdout = &self.stdout;
        let table: Vec<&str> = stdout
            .lines()
            .skip_while(|line| !line.starts_with("CHECK "))
            .skip(1)
            .take_while(|line| line.starts_with("ok ") || line.starts_with("FAIL "))
            .collect();
        assert_eq!(table.len(), SCENARIOS.len(), "the final table:\n{stdout}");
        for scenario in SCENARIOS {
            let row = table
                .iter()
                .find(|row| row[4..].trim_start().starts_with(scenario))
                .unwrap_or_else(|| panic!("no row for {scenario:?} in\n{stdout}"));
            assert!(row.starts_with("ok "), "{row}");
        }
        assert!(
            stdout.contains("all 16 outcomes are the expected ones"),
            "{stdout}"
        );
        table
    }

    /// The completed rows; each names where its file landed (last), and the
    /// file is there, under the working folder's ./ferry-demo.
    fn completed_rows(&self) -> Vec<&str> {
        let completed: Vec<&str> = self
            .table()
            .into_iter()
            .filter(|row| row.contains(" completed "))
            .collect();
        assert_eq!(completed.len(), 9, "{}", self.stdout);
        for row in &completed {
            let path = row.split_whitespace().last().unwrap();
            assert!(path.starts_with("./ferry-demo/media/"), "{path}");
            assert!(self.dir.path().join(path).is_file(), "{path} did not land");
        }
        completed
    }
}

#[tokio::test]
async fn the_demo_plays_every_scenario_and_exits_0_when_each_is_as_expected() {
    let run = DemoRun::play(&[]).await;
    run.completed_rows();
    // The normal lecture's captions, transcript and chat landed beside it.
    let companions: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|line| {
            !line.contains("normal lecture's companion files landed beside its video")
        })
        .skip(1)
        .take(3)
        .collect();
    for (line, kind) in companions
        .iter()
        .zip(["transcript", "closed_captions", "chat"])
    {
        assert!(
            line.trim_start().starts_with(kind),
            "{line}\n{}",
            run.stdout
        );
        let path = line.split_whitespace().nth(1).unwrap();
        assert!(run.dir.path().join(path).is_file(), "{path} did not land");
    }
    assert_eq!(companions.len(), 3, "{}", run.stdout);
    // The table shows where each job came from.
    for (scenario, source) in [
        ("normal lecture", " webhook "),
        ("webhook lost, found by the reconciler", " reconcile "),
        ("backfilled, 5 days before the install", " backfill "),
        ("backfilled, 8 days before the install", " backfill "),
    ] {
        let row = run
            .table()
            .into_iter()
            .find(|row| row[4..].trim_start().starts_with(scenario))
            .unwrap();
        assert!(row.contains(source), "{row}");
    }
    assert!(
        !run.stdout.contains("MOVED BY"),
        "the plain demo has no replicas to name:\n{}",
        run.stdout
    );
}

#[tokio::test]
async fn the_demo_on_three_replicas_names_the_replica_that_moved_each_recording() {
    let run = DemoRun::play(&["--replicas", "3"]).await;
    let header = run
        .stdout
        .lines()
        .find(|line| line.starts_with("CHECK "))
        .unwrap();
    assert!(header.contains(" MOVED BY "), "{header}");
    assert!(
        run.stdout.contains("and 3 ferry replicas on it"),
        "{}",
        run.stdout
    );
    let replica = |row: &str| {
        (1..=3)
            .map(|i| format!("replica {i}"))
            .find(|name| row.contains(name.as_str()))
    };
    for row in run.completed_rows() {
        assert!(replica(row).is_some(), "no replica named in {row}");
    }
    // A recording decided at intake never reaches a transfer worker.
    for row in run.table() {
        if row.contains("host with no matching user")
            || row.contains("opted-out instructor")
            || row.contains("Free-plan account")
        {
            assert!(replica(row).is_none(), "{row}");
        }
    }
}

/// `ferry demo --keep-running` prints the console's URL and a key that
/// signs in to it.
#[tokio::test]
async fn the_kept_demo_prints_a_console_url_and_a_key_that_signs_in() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let mut demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-under-test"))
        .args(["demo", "--keep-running"])
        .current_dir(dir.path())
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run ferry demo --keep-running");
    let mut lines = tokio::io::BufReader::new(demo.stdout.take().unwrap()).lines();
    let found = tokio::time::timeout(DEMO_WITHIN, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let ["open", url, "and", "sign", "in", "with", key] = words.as_slice() {
                return Some((url.to_string(), key.to_string()));
            }
        }
        None
    })
    .await
    .expect("the demo printed the console line in time")
    .expect("the demo printed the console line");
    let (url, key) = found;
    let base = url.trim_end_matches("/admin");
    let browser = ferry_test_support::web::WebClient::new(base);
    let signed = browser.sign_in(&key, "").await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let jobs = browser.get("/admin/jobs").await;
    assert_eq!(jobs.status, 200);
    assert!(jobs.body.contains("Demo University"), "{}", jobs.body);
    let _ = demo.start_kill();
    let _ = demo.wait().await;
}
