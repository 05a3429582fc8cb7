//! The seed's whole journey in a real browser: Debian's headless Chromium,
//! driven over WebDriver (fantoccini) through a chromedriver this test
//! starts on a free loopback port and stops after. An admin signs in, adds
//! a configuration and copies its token; a Zoom admin clicks Install,
//! passes the simulator's consent, pastes the token and sees the success
//! page; a signed webhook arrives and the admin watches the job complete
//! live (the row changes by Server-Sent Events, without a reload), then
//! changes the media's owner; a Free-plan install is refused on the page.
//! Each page is saved as a PNG under `target/tmp/web-journey/`.
//!
//! Without chromium and chromium-driver the test fails (it never skips):
//! `.ci/test` installs them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use ferry_control::api;
use ferry_control::model::Timestamp;
use ferry_test_support::web::{WebScene, basic_user, free_port, licensed_user};
use ferry_zoomsim::downloads::FileBehavior;
use ferry_zoomsim::{FileSpec, Meeting, Mp4Layout, SyntheticMedia};

use crate::support::{MIB, sync, user};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver child process on a loopback port; killed on drop.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        for path in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver \
                 (apt-get install chromium chromium-driver; .ci/test does it)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        ChromeDriver { child, port }
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-journey");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits until `script` (a JavaScript expression) is true on the page.
async fn until(browser: &Client, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = browser
            .execute(&format!("return !!({script});"), vec![])
            .await
            .unwrap_or(serde_json::Value::Bool(false));
        if value == serde_json::Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(browser: &Client, css: &str, text: &str) {
    let field = browser.find(Locator::Css(css)).await.expect(css);
    field.send_keys(text).await.expect("type");
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .expect(css)
        .click()
        .await
        .expect("click");
}

async fn text(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .expect(css)
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_journey_in_a_real_browser() {
    let driver = ChromeDriver::start();
    let mut scene = WebScene::start(|config| {
        config.transfer.enabled = true;
        config.transfer.part_size_bytes = 5 * MIB;
        config.transfer.heartbeat_secs = 1;
    })
    .await;
    sync(
        &mut scene.admin,
        api::SyncMode::Upsert,
        vec![
            user("e1", "elisa@example.edu", "", api::UserRole::Instructor),
            user("e2", "rosa@example.edu", "", api::UserRole::Instructor),
        ],
    )
    .await
    .unwrap();
    let browser = driver.browser().await;
    let base = scene.base.clone();

    // Step 1: the institution's admin adds a configuration and copies its token.
    browser.goto(&format!("{base}/admin")).await.unwrap();
    shot(&browser, "01-sign-in").await;
    fill(&browser, "#key", &scene.institution.admin_key).await;
    click(&browser, "#sign-in").await;
    until(
        &browser,
        "document.querySelector('#add-configuration')",
        "the configurations page",
    )
    .await;
    fill(&browser, "#display_name", "Zoom Education account").await;
    click(&browser, "#add-configuration").await;
    until(
        &browser,
        "document.querySelector('#configuration-token')",
        "the token page",
    )
    .await;
    click(&browser, "#copy-token").await;
    until(
        &browser,
        "document.querySelector('#copy-token').textContent === 'Copied'",
        "the copy",
    )
    .await;
    shot(&browser, "02-configuration-token").await;
    let token = text(&browser, "#configuration-token").await;
    assert!(token.starts_with("fzc_"), "{token}");
    let install_link = browser
        .find(Locator::Css("#install-link"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("install link");

    // Step 2: a Zoom account admin installs from the Marketplace.
    scene
        .zoom_host
        .sign_in_zoom_user(licensed_user("EDU-ACCOUNT"));
    browser.goto(&install_link).await.unwrap();
    until(
        &browser,
        "document.querySelector('#configuration_token')",
        "the token prompt",
    )
    .await;
    shot(&browser, "03-token-prompt").await;
    fill(&browser, "#configuration_token", &token).await;
    click(&browser, "#install").await;
    until(
        &browser,
        "document.querySelector('p.success')",
        "the success page",
    )
    .await;
    shot(&browser, "04-installed").await;
    let installed = text(&browser, "main").await;
    assert!(installed.contains("Example University"), "{installed}");
    assert!(installed.contains("Allow Downloads"), "{installed}");

    // A recording: the admin watches it live on the jobs page.
    browser.goto(&format!("{base}/admin/jobs")).await.unwrap();
    until(
        &browser,
        "document.querySelector('#jobs').dataset.live === 'on'",
        "live progress",
    )
    .await;
    let media = SyntheticMedia::mp4(24 * MIB, Duration::from_secs(1800), Mp4Layout::FastStart, 0);
    let start = Timestamp::from_unix_seconds(Timestamp::now().0 / 1000 + 2);
    let mut meeting = Meeting::lecture("EDU-ACCOUNT", "elisa@example.edu", start).with_files(vec![
        FileSpec::mp4("shared_screen_with_speaker_view", 0, 1800, media.len()),
    ]);
    meeting.topic = "Lecture 1: Rivers".into();
    meeting.download_base = scene.zoom_host.zoom_base();
    let mut behavior = FileBehavior::new(media.clone(), &meeting.download_token);
    behavior.throttle_bytes_per_sec = Some(8 * MIB);
    scene.zoom_host.add(&meeting.files[0].id, behavior);
    let delivered = scene
        .daemon
        .zoom()
        .recording_completed(&meeting)
        .await
        .unwrap();
    assert_eq!(delivered.status, 200, "{:?}", delivered.body);
    let job_id = delivered.job_id().unwrap().to_string();
    let row = format!("document.getElementById('job-{job_id}')");
    until(
        &browser,
        &format!("{row} && {row}.dataset.state === 'transferring'"),
        "the transfer, live",
    )
    .await;
    shot(&browser, "05-jobs-transferring").await;
    until(
        &browser,
        &format!("{row}.dataset.state === 'completed'"),
        "the completion, live",
    )
    .await;
    shot(&browser, "06-jobs-completed").await;

    // The media's owner changes to an actual user.
    browser.goto(&format!("{base}/admin/media")).await.unwrap();
    until(&browser, "document.querySelector('td.owner')", "the media").await;
    assert_eq!(text(&browser, "td.owner").await, "elisa@example.edu");
    fill(&browser, "input[name=owner_email]", "rosa@example.edu").await;
    click(&browser, "form[action$='/owner'] button").await;
    until(
        &browser,
        "document.querySelector('td.owner') && document.querySelector('td.owner').textContent === 'rosa@example.edu'",
        "the new owner",
    )
    .await;
    shot(&browser, "07-media-owner-changed").await;

    // A Free-plan account is refused on the page.
    scene
        .zoom_host
        .sign_in_zoom_user(basic_user("FREE-ACCOUNT"));
    browser.goto(&install_link).await.unwrap();
    until(&browser, "document.querySelector('p.error')", "the refusal").await;
    shot(&browser, "08-free-plan-refused").await;
    let refusal = text(&browser, "p.error").await;
    assert!(refusal.contains("a paid plan"), "{refusal}");

    browser.close().await.unwrap();
    drop(driver);
    let _ = scene.daemon.stop().await;
}
