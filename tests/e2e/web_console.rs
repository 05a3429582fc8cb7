//! The admin console over plain HTTP (no browser): sessions (HttpOnly,
//! SameSite=Strict, ended when idle, at sign-out, or when the key is
//! revoked), rate-limited sign-in, CSRF on every form, another
//! institution's ids answering 404 exactly as the API's NOT_FOUND, and the
//! security headers on every page.

use ferry_control::api;
use ferry_test_support::web::{WebClient, WebScene};

use crate::support::{OPERATOR_TOKEN, connect, create_configuration, create_institution};

fn assert_security_headers(page: &ferry_test_support::web::WebPage, what: &str) {
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(
        page.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        page.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        page.header("cache-control").as_deref(),
        Some("no-store"),
        "{what}"
    );
    assert!(!page.body.contains("<script>"), "{what}: no inline script");
}

async fn signed_in(scene: &WebScene) -> WebClient {
    let browser = scene.browser();
    let signed = browser.sign_in(&scene.institution.admin_key, "").await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let cookie = signed.set_cookie("ferry_session").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(&scene.institution.admin_key));
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_behind_an_https_public_url_only() {
    for (public_url, secure) in [(None, false), (Some("https://ferry.example.edu"), true)] {
        let scene = WebScene::start(|config| {
            if let Some(url) = public_url {
                config.zoom.public_url = Some(url.into());
            }
        })
        .await;
        let signed = scene
            .browser()
            .sign_in(&scene.institution.admin_key, "")
            .await;
        assert_eq!(signed.status, 303, "{}", signed.body);
        let cookie = signed.set_cookie("ferry_session").unwrap();
        assert_eq!(
            cookie.contains("; Secure"),
            secure,
            "{public_url:?}: {cookie}"
        );
        let _ = scene.daemon.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_carries_the_security_headers() {
    let scene = WebScene::start(|_| {}).await;
    let anonymous = scene.browser();
    for path in [
        "/admin/sign-in",
        "/zoom/install/token",
        "/zoom/oauth/callback?code=x&state=y",
        "/admin/nowhere",
    ] {
        assert_security_headers(&anonymous.get(path).await, path);
    }
    assert_eq!(
        anonymous.get("/admin/jobs").await.location().as_deref(),
        Some("/admin/sign-in")
    );
    let browser = signed_in(&scene).await;
    for path in [
        "/admin/configurations",
        "/admin/accounts",
        "/admin/jobs",
        "/admin/media",
        "/admin/jobs?state=skipped",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert_security_headers(&page, path);
    }
    // The page that shows a token once.
    let list = browser.get("/admin/configurations").await;
    assert!(
        list.body
            .contains("<td class=\"ingest-mode\">all_matching_users</td>")
            && list.body.contains("<td class=\"after-copy\">keep</td>"),
        "each configuration shows its ingest mode and after-copy action: {}",
        list.body
    );
    let csrf = list.hidden("csrf").unwrap();
    let shown = browser
        .post(
            "/admin/configurations",
            &[("csrf", &csrf), ("display_name", "Law school")],
        )
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains("fzc_"), "the new token is shown");
    assert!(
        shown.body.contains("/zoom/install"),
        "with the install link"
    );
    assert_security_headers(&shown, "token page");
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_their_csrf_token_are_refused() {
    let mut scene = WebScene::start(|_| {}).await;
    let anonymous = scene.browser();
    let no_csrf = anonymous
        .post("/admin/sign-in", &[("key", &scene.institution.admin_key)])
        .await;
    assert_eq!(no_csrf.status, 403, "sign-in without csrf");
    let browser = signed_in(&scene).await;
    for fields in [vec![], vec![("csrf", "wrong")]] {
        let mut fields = fields;
        fields.push(("display_name", "Sneaky"));
        let refused = browser.post("/admin/configurations", &fields).await;
        assert_eq!(refused.status, 403, "{fields:?}");
    }
    let listed = scene
        .admin
        .configurations
        .list_zoom_configurations(api::ListZoomConfigurationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.configurations.len(), 1, "nothing was created");
    assert_eq!(browser.post("/admin/sign-out", &[]).await.status, 403);
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_institutions_ids_answer_404() {
    let mut scene = WebScene::start(|_| {}).await;
    let other = create_institution(&mut scene.operator, "Other College")
        .await
        .unwrap();
    let mut other_admin = connect(&scene.daemon.grpc_url(), Some(&other.admin_key))
        .await
        .unwrap();
    let theirs = create_configuration(&mut other_admin, "Theirs")
        .await
        .configuration
        .unwrap()
        .configuration_id;
    let browser = signed_in(&scene).await;
    let csrf = browser
        .get("/admin/configurations")
        .await
        .hidden("csrf")
        .unwrap();
    let confirm = browser
        .get(&format!("/admin/configurations/{theirs}/delete"))
        .await;
    assert_eq!(confirm.status, 404, "{}", confirm.body);
    for action in ["rotate", "delete"] {
        let page = browser
            .post(
                &format!("/admin/configurations/{theirs}/{action}"),
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(page.status, 404, "{action}: {}", page.body);
    }
    let retry = browser
        .post("/admin/jobs/job_unknown/retry", &[("csrf", &csrf)])
        .await;
    assert_eq!(retry.status, 404);
    // Their configuration is untouched.
    let still = other_admin
        .configurations
        .list_zoom_configurations(api::ListZoomConfigurationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.configurations.len(), 1);

    // The operator token signs in to a named institution only.
    let operator = scene.browser();
    assert_eq!(operator.sign_in(OPERATOR_TOKEN, "").await.status, 401);
    let signed = operator
        .sign_in(OPERATOR_TOKEN, &other.institution_id)
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let page = operator.get("/admin/configurations").await;
    assert!(page.body.contains("Theirs") && page.body.contains("Other College"));
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_when_idle_at_sign_out_and_when_the_key_is_revoked() {
    let mut scene = WebScene::start(|config| {
        config.console.session_idle_secs = 1;
        config.console.session_max_secs = 60;
        config.console.sign_in_per_minute = 5;
    })
    .await;
    let browser = signed_in(&scene).await;
    assert_eq!(browser.get("/admin/accounts").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let expired = browser.get("/admin/accounts").await;
    assert_eq!(expired.status, 303, "an idle session has expired");
    assert_eq!(expired.location().as_deref(), Some("/admin/sign-in"));

    let browser = signed_in(&scene).await;
    let csrf = browser.get("/admin/accounts").await.hidden("csrf").unwrap();
    assert_eq!(
        browser
            .post("/admin/sign-out", &[("csrf", &csrf)])
            .await
            .status,
        303
    );
    assert_eq!(browser.get("/admin/accounts").await.status, 303);

    // A revoked key ends its sessions.
    let browser = signed_in(&scene).await;
    scene
        .operator
        .institutions
        .revoke_admin_key(api::RevokeAdminKeyRequest {
            key_id: scene.institution.key_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(browser.get("/admin/accounts").await.status, 303);

    // Sign-in is rate-limited per address (5 a minute here; 3 used above).
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(scene.browser().sign_in("fak_wrong", "").await.status);
    }
    assert_eq!(statuses, vec![401, 401, 429, 429]);
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_use_still_ends_at_its_absolute_expiry() {
    let scene = WebScene::start(|config| {
        config.console.session_idle_secs = 2;
        config.console.session_max_secs = 3;
    })
    .await;
    let browser = signed_in(&scene).await;
    let started = std::time::Instant::now();
    // Used every 0.5 s, never idle for 2 s: only the 3 s limit can end it.
    let ended_after = loop {
        let page = browser.get("/admin/accounts").await;
        if page.status == 303 {
            assert_eq!(page.location().as_deref(), Some("/admin/sign-in"));
            break started.elapsed();
        }
        assert_eq!(page.status, 200);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the session outlived its absolute expiry"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert!(
        ended_after >= std::time::Duration::from_millis(2500),
        "ended after {ended_after:?}, before its 3 s"
    );
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_csv_upload_shows_each_rejected_line() {
    let mut scene = WebScene::start(|_| {}).await;
    let browser = signed_in(&scene).await;
    let csrf = browser
        .get("/admin/directory")
        .await
        .hidden("csrf")
        .unwrap();
    let csv = "email,alternate_zoom_email,display_name,role,external_id\n\
               elisa@example.edu,,Elisa,instructor,e1\n\
               not-an-email,,Nobody,student,e2\n\
               rosa@example.edu,,Rosa,student,\n";
    let refused = browser
        .post_multipart("/admin/directory", &[("users", csv), ("mode", "upsert")])
        .await;
    assert_eq!(refused.status, 403, "no csrf");
    let page = browser
        .post_multipart(
            "/admin/directory",
            &[("csrf", &csrf), ("users", csv), ("mode", "upsert")],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("1 created"), "{}", page.body);
    assert!(
        page.body.contains("<td>3</td>") && page.body.contains("email:"),
        "line 3's email: {}",
        page.body
    );
    assert!(
        page.body.contains("<td>4</td>") && page.body.contains("external_id: required"),
        "{}",
        page.body
    );
    let found = scene
        .admin
        .users
        .lookup_user_by_email(api::LookupUserByEmailRequest {
            institution_id: String::new(),
            email: "elisa@example.edu".into(),
        })
        .await;
    assert!(found.is_ok(), "the valid line was applied");
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_configuration_names_the_accounts_it_uninstalls_first() {
    let mut scene = WebScene::start(|_| {}).await;
    let token = scene.configuration_token.clone();
    crate::support::install(&mut scene.admin, &token, "ACCOUNT-ONE", api::ZoomPlan::Pro)
        .await
        .unwrap();
    let configuration_id = scene
        .admin
        .configurations
        .list_zoom_configurations(api::ListZoomConfigurationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .configurations[0]
        .configuration_id
        .clone();
    let browser = signed_in(&scene).await;
    let list = browser.get("/admin/configurations").await;
    assert!(list.body.contains("Main Zoom account"), "{}", list.body);
    let confirm = browser
        .get(&format!("/admin/configurations/{configuration_id}/delete"))
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm.body.contains("ACCOUNT-ONE"),
        "names the account: {}",
        confirm.body
    );
    let still = scene
        .admin
        .accounts
        .list_zoom_accounts(api::ListZoomAccountsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .accounts;
    assert_eq!(still.len(), 1, "the confirmation page deletes nothing");
    let csrf = confirm.hidden("csrf").unwrap();
    let deleted = browser
        .post(
            &format!("/admin/configurations/{configuration_id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let left = scene
        .admin
        .accounts
        .list_zoom_accounts(api::ListZoomAccountsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .accounts;
    assert!(left.is_empty(), "uninstalled with its configuration");
    // The accounts page and a change of owner to nobody.
    let accounts = browser.get("/admin/accounts").await;
    assert_eq!(accounts.status, 200);
    let nobody = browser
        .post(
            "/admin/media/media_unknown/owner",
            &[("csrf", &csrf), ("owner_email", "nobody@example.edu")],
        )
        .await;
    assert_eq!(nobody.status, 404);
    let _ = scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_addr_moves_the_console_to_a_listener_of_its_own() {
    let scene = WebScene::start(|config| {
        config.console.addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let public = scene.browser();
    assert_eq!(
        public.get("/admin/sign-in").await.status,
        404,
        "not on the public listener"
    );
    assert_eq!(
        public.get("/zoom/install").await.status,
        303,
        "the install stays where Zoom sends browsers back"
    );
    let console_addr = scene
        .daemon
        .app
        .console_addr
        .expect("the console's listener");
    let console = WebClient::new(&format!("http://{console_addr}"));
    let signed = console.sign_in(&scene.institution.admin_key, "").await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(console.get("/admin/jobs").await.status, 200);
    assert_eq!(
        console.get("/zoom/webhook").await.status,
        404,
        "no intake there"
    );
    let _ = scene.daemon.stop().await;
}
