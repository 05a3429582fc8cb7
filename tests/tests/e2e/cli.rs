//! The `ferry` binary as the admin client: tables, `--json`, CSV sync, and
//! one-line errors with a non-zero exit code.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn ferry(daemon_url: &str, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry-under-test"))
        .args(args)
        .env_clear()
        .env("FERRY_SERVER", daemon_url)
        .env("FERRY_TOKEN", token)
        .output()
        .expect("run ferry")
}

fn json(output: &std::process::Output) -> serde_json::Value {
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
