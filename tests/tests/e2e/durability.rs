//! What an RPC acknowledged survives `kill -9` of the daemon process.

use std::path::Path;

use ferry_control::api;

use crate::support::*;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry-under-test"))
}

#[tokio::test]
async fn acknowledged_changes_survive_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = DaemonProcess::spawn(binary(), dir.path(), &[]).unwrap();
    let operator_token = first
        .banner
        .iter()
        .find(|line| line.starts_with("fop_"))
        .expect("the first start prints a generated operator token")
        .clone();
    let mut operator = connect(&first.grpc_url(), Some(&operator_token))
        .await
        .unwrap();
    let institution = create_institution(&mut operator, "Durable U")
        .await
        .unwrap();
    let mut admin = connect(&first.grpc_url(), Some(&institution.admin_key))
        .await
        .unwrap();
    let config = create_configuration(&mut admin, "Main").await;
    let installed = install(
        &mut admin,
        &config.configuration_token,
        "acct-1",
        api::ZoomPlan::Education,
    )
    .await
    .unwrap();
    let users: Vec<_> = (0..500)
        .map(|i| {
            user(
                &format!("u{i}"),
                &format!("user{i}@example.edu"),
                "",
                api::UserRole::Student,
            )
        })
        .collect();
    let summary = sync(&mut admin, api::SyncMode::Full, users).await.unwrap();
    assert_eq!(summary.created, 500);
    // The last acknowledged call, immediately before the kill.
    let revoked_key = operator
        .institutions
        .create_admin_key(api::CreateAdminKeyRequest {
            institution_id: institution.institution_id.clone(),
            name: "to revoke".into(),
        })
        .await
        .unwrap()
        .into_inner();
    operator
        .institutions
        .revoke_admin_key(api::RevokeAdminKeyRequest {
            key_id: revoked_key.key.unwrap().key_id,
        })
        .await
        .unwrap();
    first.kill9().unwrap();

    let second = DaemonProcess::spawn(binary(), dir.path(), &[]).unwrap();
    assert!(
        !second.banner.iter().any(|line| line.starts_with("fop_")),
        "the operator token is printed only once"
    );
    let mut operator = connect(&second.grpc_url(), Some(&operator_token))
        .await
        .unwrap();
    let listed = operator
        .institutions
        .list_institutions(api::ListInstitutionsRequest::default())
        .await
        .expect("the generated operator token still works after a restart")
        .into_inner();
    assert_eq!(listed.institutions.len(), 1);
    let mut admin = connect(&second.grpc_url(), Some(&institution.admin_key))
        .await
        .unwrap();
    let account = admin
        .accounts
        .get_zoom_account(api::GetZoomAccountRequest {
            zoom_account_id: "acct-1".into(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(account.install_time, installed.install_time);
    let found = admin
        .users
        .lookup_user_by_email(api::LookupUserByEmailRequest {
            institution_id: String::new(),
            email: "USER499@example.edu".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.external_id, "u499");
    let mut revoked = connect(&second.grpc_url(), Some(&revoked_key.secret))
        .await
        .unwrap();
    assert!(
        revoked
            .institutions
            .get_institution(api::GetInstitutionRequest::default())
            .await
            .is_err(),
        "the revocation acknowledged before the kill holds"
    );
    // The configuration token still installs (it was stored, hashed).
    install(
        &mut admin,
        &config.configuration_token,
        "acct-2",
        api::ZoomPlan::Pro,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn serve_refuses_plain_tcp_off_loopback_and_unknown_settings() {
    let dir = tempfile::tempdir().unwrap();
    for (env, needle) in [
        (vec![("FERRY_GRPC_ADDR", "0.0.0.0:0")], "grpc.insecure"),
        (vec![("FERRY_GRPC_ADRR", "127.0.0.1:0")], "FERRY_GRPC_ADRR"),
    ] {
        let mut command = std::process::Command::new(binary());
        command
            .arg("serve")
            .env_clear()
            .env("FERRY_DATA_DIR", dir.path());
        for (key, value) in &env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(needle),
            "stderr {stderr:?} should mention {needle}"
        );
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "one-line error: {stderr:?}"
        );
    }
}
