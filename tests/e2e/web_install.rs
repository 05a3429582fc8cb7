//! The Zoom Marketplace install over plain HTTP (no browser): the plan is
//! read from Zoom, a Basic user is refused with the seed's words, `state`
//! is single-use, short-lived and bound to the browser that started the
//! install, the token prompt's form needs its CSRF token, and a
//! Marketplace account's refresh token is spent once even when several
//! transfers need a fresh access token at once.

use ferry_control::api;
use ferry_test_support::web::{
    MARKETPLACE_CLIENT_ID, MARKETPLACE_CLIENT_SECRET, WebClient, WebScene, basic_user, free_port,
    install, licensed_user,
};
use ferry_zoomsim::{Mp4Layout, SyntheticMedia};

use crate::support::{ACCOUNT, MIB, create_configuration, create_institution};
use crate::transfer::{state, transfers};

async fn accounts(scene: &mut WebScene) -> Vec<api::ZoomAccount> {
    scene
        .admin
        .accounts
        .list_zoom_accounts(api::ListZoomAccountsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .accounts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketplace_install_reads_the_plan_from_zoom() {
    let mut scene = WebScene::start(|_| {}).await;
    let browser = scene.browser();

    // A Basic user's account is a free one: refused on the page, nothing installed.
    let refused = scene.approve(&browser, basic_user("FREE-ACCOUNT")).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("a paid plan")
            && refused
                .body
                .contains("pro, business, education, api or enterprise"),
        "{}",
        refused.body
    );
    assert!(accounts(&mut scene).await.is_empty());

    // A licensed user's account installs with the pasted token.
    let token = scene.configuration_token.clone();
    let done = scene
        .install(&browser, licensed_user("PAID-ACCOUNT"), &token)
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Example University"), "{}", done.body);
    assert!(done.body.contains("Allow Downloads"));
    assert!(
        done.body
            .contains("Only the host can download cloud recordings")
    );
    assert!(!done.body.contains(&token), "the token is not shown back");
    let installed = accounts(&mut scene).await;
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0].zoom_account_id, "PAID-ACCOUNT");
    assert_eq!(installed[0].plan, api::ZoomPlan::Licensed as i32);
    let tokens = scene
        .daemon
        .app
        .store
        .account_tokens("PAID-ACCOUNT")
        .await
        .unwrap()
        .expect("the account's oauth tokens are stored");
    assert_eq!(tokens.client_id, MARKETPLACE_CLIENT_ID);
    let refresh = scene.zoom_host.issued_refresh_tokens("PAID-ACCOUNT");
    assert!(
        !String::from_utf8_lossy(&tokens.sealed_refresh_token.0).contains(&refresh[0]),
        "stored sealed, not in the clear"
    );

    // A wrong token: the prompt again, with the reason; nothing changes.
    let wrong = scene
        .install(&browser, licensed_user("OTHER-ACCOUNT"), "fzc_not-a-token")
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(wrong.body.contains("not a valid configuration token"));

    // The same account into another institution: InstallZoomAccount's rule.
    let other = create_institution(&mut scene.operator, "Other College")
        .await
        .unwrap();
    let mut other_admin = crate::support::connect(&scene.daemon.grpc_url(), Some(&other.admin_key))
        .await
        .unwrap();
    let other_token = create_configuration(&mut other_admin, "Theirs")
        .await
        .configuration_token;
    let conflict = scene
        .install(
            &scene.browser(),
            licensed_user("PAID-ACCOUNT"),
            &other_token,
        )
        .await;
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    assert!(
        conflict.body.contains("another institution"),
        "{}",
        conflict.body
    );

    // Deauthorization deletes the tokens.
    let zoom = scene.daemon.zoom();
    assert_eq!(zoom.deauthorize("PAID-ACCOUNT").await.unwrap().status, 200);
    assert!(
        scene
            .daemon
            .app
            .store
            .account_tokens("PAID-ACCOUNT")
            .await
            .unwrap()
            .is_none()
    );
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_state_is_single_use_bound_to_the_browser_and_unforgeable() {
    let mut scene = WebScene::start(|_| {}).await;
    scene
        .zoom_host
        .sign_in_zoom_user(licensed_user("PAID-ACCOUNT"));
    let browser = scene.browser();
    let start = browser.get("/zoom/install").await;
    let authorize_url = start.location().unwrap();
    assert!(
        authorize_url.contains("code_challenge_method=S256"),
        "{authorize_url}"
    );
    assert!(authorize_url.contains("code_challenge="));
    assert!(authorize_url.contains(&format!("client_id={MARKETPLACE_CLIENT_ID}")));
    let state_cookie = start.set_cookie("ferry_install_state").unwrap();
    assert!(state_cookie.contains("HttpOnly"), "{state_cookie}");
    let callback = browser.follow(&start).await.location().unwrap();

    // Replayed: the first use spends the state.
    let first = browser.get(&callback).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let replay = browser.get(&callback).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("already used"), "{}", replay.body);

    // Forged.
    let forged = browser
        .get("/zoom/oauth/callback?code=sim-code-1&state=made-up-state")
        .await;
    assert_eq!(forged.status, 400);

    // A state started in one browser and finished in another is refused,
    // and spent: the rightful browser cannot use it afterwards either.
    let victim = scene.browser();
    let start = victim.get("/zoom/install").await;
    let callback = victim.follow(&start).await.location().unwrap();
    let attacker = scene.browser();
    let stolen = attacker.get(&callback).await;
    assert_eq!(stolen.status, 400, "{}", stolen.body);
    assert!(stolen.body.contains("another browser"));
    assert_eq!(victim.get(&callback).await.status, 400);
    assert!(accounts(&mut scene).await.is_empty());

    // The token prompt's POST needs its CSRF token.
    let prompt = scene.approve(&browser, licensed_user("PAID-ACCOUNT")).await;
    assert_eq!(prompt.status, 200);
    let token = scene.configuration_token.clone();
    let missing = browser
        .post("/zoom/install/token", &[("configuration_token", &token)])
        .await;
    assert_eq!(missing.status, 403, "{}", missing.body);
    let wrong = browser
        .post(
            "/zoom/install/token",
            &[("csrf", "not-the-token"), ("configuration_token", &token)],
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert!(accounts(&mut scene).await.is_empty(), "nothing installed");
    let csrf = prompt.hidden("csrf").unwrap();
    let done = browser
        .post(
            "/zoom/install/token",
            &[("csrf", &csrf), ("configuration_token", &token)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(accounts(&mut scene).await.len(), 1);
    let _ = scene.daemon.stop().await;
}

/// Posts a refresh grant to the simulator's token endpoint as the app.
async fn refresh_with(zoom_base: &str, refresh_token: &str) -> u16 {
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{MARKETPLACE_CLIENT_ID}:{MARKETPLACE_CLIENT_SECRET}"),
    );
    let request = hyper::Request::post(format!("{zoom_base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Basic {basic}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(format!(
            "grant_type=refresh_token&refresh_token={refresh_token}"
        ))))
        .unwrap();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http()
        .request(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_spent_once() {
    let port = free_port();
    let mut t = transfers(|config| {
        config.http.addr = format!("127.0.0.1:{port}").parse().unwrap();
        config.zoom.client_id = Some(MARKETPLACE_CLIENT_ID.into());
        config.zoom.client_secret = Some(ferry_control::secrets::Secret::new(
            MARKETPLACE_CLIENT_SECRET,
        ));
        config.zoom.public_url = Some(format!("http://127.0.0.1:{port}"));
    })
    .await;
    t.server
        .register_marketplace_app(MARKETPLACE_CLIENT_ID, MARKETPLACE_CLIENT_SECRET);
    // Access tokens that are always about to expire: every use refreshes.
    t.server.set_user_token_lifetime(1);
    let browser = WebClient::new(&format!("http://127.0.0.1:{port}"));
    let done = install(
        &t.server,
        &browser,
        licensed_user(ACCOUNT),
        &t.scene.configuration_token,
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let installed = t.server.issued_refresh_tokens(ACCOUNT);
    assert_eq!(installed.len(), 1);

    let media = SyntheticMedia::mp4(
        3 * MIB,
        std::time::Duration::from_secs(300),
        Mp4Layout::FastStart,
        0,
    );
    // Three expired webhook tokens at once: three fresh download tokens,
    // each through the account's Marketplace token.
    let mut jobs = Vec::new();
    for i in 0..3i64 {
        let mut meeting = t.meeting(&media, media.len(), |b| {
            b.token = format!("a-token-zoom-knows-{i}")
        });
        meeting.uuid = format!("marketplace-meeting-{i}==");
        meeting.start = t.scene.after_install(60 + i);
        t.server
            .add_meeting(ACCOUNT, &meeting.uuid, &[meeting.files[0].id.as_str()]);
        jobs.push(t.scene.ingest(&meeting).await.job_id);
    }
    for job_id in &jobs {
        let done = t.wait_final(job_id).await;
        assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    }
    let stats = t.server.marketplace_stats();
    assert!(stats.refreshes >= 1, "{stats:?}");
    assert_eq!(
        stats.spent_refresh_tokens_refused, 0,
        "no refresh token was sent twice: {stats:?}"
    );

    // The first refresh token is spent: Zoom refuses it a second time...
    assert_eq!(
        refresh_with(&t.server.zoom_base(), &installed[0]).await,
        400
    );
    assert_eq!(t.server.marketplace_stats().spent_refresh_tokens_refused, 1);
    // ...and the stored one still works.
    let mut meeting = t.meeting(&media, media.len(), |b| b.token = "yet-another".into());
    meeting.uuid = "marketplace-meeting-last==".into();
    meeting.start = t.scene.after_install(90);
    t.server
        .add_meeting(ACCOUNT, &meeting.uuid, &[meeting.files[0].id.as_str()]);
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    assert_eq!(t.server.marketplace_stats().spent_refresh_tokens_refused, 1);
    let _ = t.scene.daemon.stop().await;
}
