//! The intake's answers to store failures, driven for real: a daemon on
//! loopback with its own SQLite file, webhooks signed and posted by the Zoom
//! simulator, the stored record corrupted behind the daemon's back.

use ferry_control::model::{AccountInstall, NewConfiguration, Timestamp, ZoomPlan};
use ferry_control::secrets::{Secret, TokenHash};

use crate::app::RunningApp;
use crate::config::Config;
use ferry_zoomsim::{Meeting, ZoomSimulator};

const WEBHOOK_SECRET: &str = "intake-test-webhook-secret";
const ACCOUNT: &str = "intake-test-account";

async fn daemon(data_dir: &std::path::Path) -> (RunningApp, Config) {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        operator_token: Some(Secret::new("fop_intake-test-operator-token")),
        ..Config::default()
    };
    config.grpc.addr = "127.0.0.1:0".parse().expect("loopback");
    config.http.addr = "127.0.0.1:0".parse().expect("loopback");
    config.zoom.webhook_secret = Some(Secret::new(WEBHOOK_SECRET));
    config.transfer.enabled = false;
    config.validate().expect("a valid test config");
    let app = crate::app::start(config.clone())
        .await
        .expect("daemon starts");
    (app, config)
}

async fn install_account(app: &RunningApp) {
    let store = &app.store;
    let now = Timestamp::now();
    let institution = store.create_institution("Intake U", now).await.unwrap();
    let configuration = store
        .create_configuration(NewConfiguration {
            institution_id: institution.institution_id.clone(),
            display_name: "main".into(),
            view_priority: Vec::new(),
            policy: Default::default(),
            token_hash: TokenHash::of("fzc_intake-test-configuration-token"),
            now,
        })
        .await
        .unwrap();
    store
        .install_account(AccountInstall {
            configuration_id: configuration.configuration_id,
            zoom_account_id: ACCOUNT.into(),
            plan: ZoomPlan::Pro,
            oauth: None,
            now,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_corrupt_stored_account_answers_500_which_invites_no_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (app, config) = daemon(dir.path()).await;
    install_account(&app).await;
    let zoom = ZoomSimulator::new(app.http_addr, WEBHOOK_SECRET);

    // While the account reads back, the recording is decided (its host is
    // unknown, so it is skipped) and the answer is 200.
    let meeting = Meeting::lecture(ACCOUNT, "nobody@intake.edu", Timestamp::now());
    let answer = zoom.recording_completed(&meeting).await.unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.state(), Some("skipped"));

    let sqlite = rusqlite::Connection::open(config.sqlite_path()).unwrap();
    let changed = sqlite
        .execute(
            "UPDATE zoom_accounts SET plan = 'platinum' WHERE zoom_account_id = ?1",
            [ACCOUNT],
        )
        .unwrap();
    assert_eq!(changed, 1);

    let meeting = Meeting::lecture(ACCOUNT, "nobody@intake.edu", Timestamp::now());
    let answer = zoom.recording_completed(&meeting).await.unwrap();
    assert_eq!(answer.status, 500, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        serde_json::json!({ "error": "could not record the event" })
    );
    app.shutdown().await;
}
