//! Loading: defaults, file, environment, validation, and the errors that
//! name what is wrong.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_the_embedded_ones() {
    let config = Config::load(None, env(&[])).unwrap();
    assert_eq!(config.data_dir, PathBuf::from("./ferry-data"));
    assert_eq!(config.grpc.addr.to_string(), "127.0.0.1:50051");
    assert_eq!(config.http.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.sqlite_path(), PathBuf::from("./ferry-data/ferry.db"));
}

#[test]
fn environment_overrides_file_and_names_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.toml");
    std::fs::write(
        &file,
        "data_dir = \"/from/file\"\n[grpc]\naddr = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let config = Config::load(
        Some(&file),
        env(&[
            ("FERRY_GRPC_ADDR", "127.0.0.1:2"),
            ("FERRY_HTTP_ADDR", "127.0.0.1:3"),
            ("FERRY_TOKEN", "client variables are ignored"),
            ("HOME", "/root"),
        ]),
    )
    .unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/from/file"));
    assert_eq!(config.grpc.addr.port(), 2);
    assert_eq!(config.http.addr.port(), 3);

    let error = Config::load(None, env(&[("FERRY_GRPC_ADRR", "x")])).unwrap_err();
    assert!(
        format!("{error:#}").contains("FERRY_GRPC_ADRR"),
        "{error:#}"
    );
    std::fs::write(&file, "[grpc]\nadrr = \"127.0.0.1:1\"\n").unwrap();
    let error = Config::load(Some(&file), env(&[])).unwrap_err();
    assert!(format!("{error:#}").contains("adrr"), "{error:#}");
}

#[test]
fn caps_can_differ_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.toml");
    std::fs::write(
        &file,
        "[caps]\nmax_file_bytes = 1000\n[caps.accounts.small-acct]\nmax_file_bytes = 10\n",
    )
    .unwrap();
    let caps = Config::load(Some(&file), env(&[])).unwrap().caps();
    assert_eq!(caps.for_account("small-acct").max_file_bytes, 10);
    assert_eq!(
        caps.for_account("small-acct").max_duration_ms,
        caps.default.max_duration_ms
    );
    assert_eq!(caps.for_account("other").max_file_bytes, 1000);

    std::fs::write(&file, "[caps.accounts.a]\nmax_file_byte = 10\n").unwrap();
    let error = Config::load(Some(&file), env(&[])).unwrap_err();
    assert!(format!("{error:#}").contains("max_file_byte"), "{error:#}");
    std::fs::write(&file, "[caps.accounts.a]\nmax_file_bytes = 0\n").unwrap();
    let error = Config::load(Some(&file), env(&[])).unwrap_err();
    assert!(
        format!("{error:#}").contains("caps.accounts.a"),
        "{error:#}"
    );
}

#[test]
fn the_s3_sink_is_configured_from_the_environment() {
    let error = Config::load(None, env(&[("FERRY_TRANSFER_SINK", "s3")])).unwrap_err();
    assert!(format!("{error:#}").contains("s3: bucket"), "{error:#}");
    let config = Config::load(
        None,
        env(&[
            ("FERRY_TRANSFER_SINK", "s3"),
            ("FERRY_S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("FERRY_S3_BUCKET", "recordings"),
            ("FERRY_S3_ACCESS_KEY_ID", "ferry"),
            ("FERRY_S3_SECRET_ACCESS_KEY", "s3-secret-value"),
            ("FERRY_S3_PATH_STYLE", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(config.s3.bucket, "recordings");
    assert!(config.s3.path_style);
    assert!(!format!("{config:?}").contains("s3-secret-value"));
    let error = Config::load(None, env(&[("FERRY_TRANSFER_SINK", "gcs")])).unwrap_err();
    assert!(format!("{error:#}").contains("transfer.sink"), "{error:#}");
}

#[test]
fn zoom_api_urls_must_be_https() {
    let config = Config::load(
        None,
        env(&[
            ("FERRY_ZOOM_API_BASE_URL", "https://api.zoomgov.com"),
            ("FERRY_ZOOM_OAUTH_BASE_URL", "https://zoomgov.com"),
        ]),
    )
    .unwrap();
    assert_eq!(config.zoom.api_base_url, "https://api.zoomgov.com");
    for (key, url) in [
        ("FERRY_ZOOM_API_BASE_URL", "ftp://api.zoom.us"),
        ("FERRY_ZOOM_OAUTH_BASE_URL", "http://zoom.us"),
        ("FERRY_ZOOM_API_BASE_URL", "not a url"),
    ] {
        let error = Config::load(None, env(&[(key, url)])).unwrap_err();
        let name = key.trim_start_matches("FERRY_ZOOM_").to_ascii_lowercase();
        assert!(
            format!("{error:#}").contains(&format!("zoom.{name}")),
            "{error:#}"
        );
    }
}

#[test]
fn plain_tcp_off_loopback_needs_insecure() {
    let error = Config::load(None, env(&[("FERRY_GRPC_ADDR", "0.0.0.0:50051")])).unwrap_err();
    assert!(format!("{error:#}").contains("grpc.insecure"), "{error:#}");
    let config = Config::load(
        None,
        env(&[
            ("FERRY_GRPC_ADDR", "0.0.0.0:50051"),
            ("FERRY_GRPC_INSECURE", "true"),
        ]),
    )
    .unwrap();
    assert!(config.grpc.insecure);
    let error = Config::load(None, env(&[("FERRY_HTTP_TLS_CERT", "/c.pem")])).unwrap_err();
    assert!(format!("{error:#}").contains("http.tls_key"), "{error:#}");
}

#[test]
fn secrets_do_not_show_in_debug() {
    let config = Config::load(None, env(&[("FERRY_OPERATOR_TOKEN", "fop_supersecret")])).unwrap();
    assert!(!format!("{config:?}").contains("supersecret"));
}

/// The documented variables, from the README's configuration reference.
fn readme_variables() -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let reference = &readme[readme
        .find("## Configuration reference")
        .expect("the README has a configuration reference")..];
    reference
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| line.split('|').nth(3))
        .filter_map(|cell| cell.trim().strip_prefix('`')?.split('`').next())
        .filter(|name| name.starts_with("FERRY_"))
        .map(String::from)
        .collect()
}

#[test]
fn every_documented_variable_is_derived_from_the_types_and_nothing_else_is() {
    let derived: Vec<String> = super::env::variables()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let documented = readme_variables();
    assert_eq!(documented.len(), 83, "{documented:?}");
    for name in &documented {
        assert!(
            derived.contains(name),
            "{name} is documented but not a setting"
        );
    }
    // The HTTP-only limits exist on every listener section; only [http]'s
    // are documented.
    let undocumented: Vec<&String> = derived
        .iter()
        .filter(|name| !documented.contains(name))
        .collect();
    assert_eq!(
        undocumented,
        ["FERRY_GRPC_MAX_BODY_BYTES", "FERRY_GRPC_READ_TIMEOUT_SECS"]
    );
}

#[test]
fn every_variable_round_trips_its_default() {
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    for (name, key) in super::env::variables() {
        let (section, field) = key
            .split_once('.')
            .map_or((None, key.as_str()), |(s, f)| (Some(s), f));
        let default = match section {
            Some(s) => defaults.get(s).and_then(|t| t.get(field)),
            None => defaults.get(field),
        };
        let text = match default {
            None => String::new(),
            Some(toml::Value::String(s)) => s.clone(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(","),
            Some(other) => other.to_string(),
        };
        let config = Config::load(None, env(&[(&name, &text)]))
            .unwrap_or_else(|e| panic!("{name}={text:?}: {e:#}"));
        assert_eq!(
            toml::Value::try_from(&config).unwrap(),
            defaults,
            "{name}={text:?}"
        );
    }
}

#[test]
fn variables_are_read_by_their_key_type() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.toml");
    std::fs::write(
        &file,
        "[transfer]\nlocal_dir = \"/from/file\"\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\n",
    )
    .unwrap();
    let config = Config::load(
        Some(&file),
        env(&[
            ("FERRY_LOG_FORMAT", "json"),
            ("FERRY_GRPC_ADDR", " 127.0.0.1:9 "),
            ("FERRY_TRANSFER_MAX_ATTEMPTS", " 9"),
            ("FERRY_TRANSFER_ENABLED", "false"),
            ("FERRY_ZOOM_DOWNLOAD_ALLOWLIST", " a.edu , *.b.edu,"),
            ("FERRY_TRANSFER_LOCAL_DIR", ""),
            ("FERRY_S3_ENDPOINT", ""),
            ("FERRY_S3_ACCESS_KEY_ID", "12345"),
            ("FERRY_METRICS_ADDR", "127.0.0.1:9100"),
            ("FERRY_ZOOM_WEBHOOK_SECRET", "42"),
            ("FERRY_STORE_BACKEND", "sqlite"),
        ]),
    )
    .unwrap();
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.grpc.addr.port(), 9);
    assert_eq!(config.transfer.max_attempts, 9);
    assert!(!config.transfer.enabled);
    assert_eq!(config.zoom.download_allowlist, ["a.edu", "*.b.edu"]);
    assert_eq!(config.transfer.local_dir, None);
    assert_eq!(config.s3.endpoint, None);
    assert_eq!(config.s3.access_key_id, "12345");
    assert_eq!(config.metrics.addr.map(|a| a.port()), Some(9100));
    assert_eq!(
        config.zoom.webhook_secret.as_ref().map(|s| s.expose()),
        Some("42")
    );
    assert_eq!(config.store.backend, StoreBackend::Sqlite);
    assert_eq!(config.transfer.sink, SinkKind::Local);
}

#[test]
fn the_extra_ca_file_is_a_path_read_at_start_up_not_while_loading() {
    let config = Config::load(
        None,
        env(&[(
            "FERRY_TRANSFER_EXTRA_CA_FILE",
            "/nonexistent/private-ca.pem",
        )]),
    )
    .unwrap();
    assert_eq!(
        config.transfer.extra_ca_file.as_deref(),
        Some(std::path::Path::new("/nonexistent/private-ca.pem"))
    );
    let error = format!("{:#}", config.transfer.trust().unwrap_err());
    assert!(
        error.starts_with("transfer.extra_ca_file: cannot read /nonexistent/private-ca.pem: "),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");
    let config = Config::load(None, env(&[])).unwrap();
    assert_eq!(config.transfer.extra_ca_file, None);
    assert_eq!(config.transfer.trust().unwrap().extra_roots(), 0);
}

#[test]
fn a_bad_variable_is_refused_in_one_line_naming_it_and_its_key() {
    for (name, value, key) in [
        ("FERRY_GRPC_ADRR", "x", "unknown setting grpc.adrr"),
        ("FERRY_NOPE", "x", "unknown setting nope"),
        (
            "FERRY_TRANSFER_MAX_ATTEMPTS",
            "many",
            "transfer.max_attempts: cannot parse",
        ),
        ("FERRY_GRPC_ADDR", "nowhere", "grpc.addr:"),
        ("FERRY_STORE_BACKEND", "mysql", "store.backend:"),
        ("FERRY_LOG_FORMAT", "xml", "log_format:"),
        (
            "FERRY_CAPS_ACCOUNTS",
            "a=1",
            "caps.accounts: can only be set in the config file",
        ),
        ("FERRY_S3", "x", "unknown setting s3"),
    ] {
        let error = Config::load(None, env(&[(name, value)])).unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.starts_with(&format!("environment variable {name}: {key}")),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }
}

#[test]
fn a_bad_file_value_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.toml");
    std::fs::write(&file, "data_dir = \"/d\"\n[transfer]\nsink = \"gcs\"\n").unwrap();
    let error = Config::load(Some(&file), env(&[])).unwrap_err();
    let text = format!("{error:#}");
    assert!(text.contains("unknown variant `gcs`"), "{text}");
    assert!(text.contains("(line 3)"), "{text}");
}

#[test]
fn the_marketplace_app_comes_from_the_environment_whole_or_not_at_all() {
    let config = Config::load(
        None,
        env(&[
            ("FERRY_ZOOM_CLIENT_ID", "marketplace-id"),
            ("FERRY_ZOOM_CLIENT_SECRET", "marketplace-supersecret"),
            ("FERRY_ZOOM_PUBLIC_URL", "https://ferry.example.edu/"),
        ]),
    )
    .unwrap();
    let app = config.zoom.marketplace_app().expect("configured");
    assert_eq!(
        app.redirect_uri(),
        "https://ferry.example.edu/zoom/oauth/callback"
    );
    assert!(!format!("{config:?}").contains("supersecret"));
    assert!(!format!("{app:?}").contains("supersecret"));
    assert!(!toml::to_string(&config).unwrap().contains("supersecret"));

    let partial =
        Config::load(None, env(&[("FERRY_ZOOM_CLIENT_ID", "marketplace-id")])).unwrap_err();
    assert!(
        format!("{partial:#}").contains("go together"),
        "{partial:#}"
    );
    for url in ["http://ferry.example.edu", "https://ferry.example.edu/path"] {
        let error = Config::load(
            None,
            env(&[
                ("FERRY_ZOOM_CLIENT_ID", "id"),
                ("FERRY_ZOOM_CLIENT_SECRET", "secret"),
                ("FERRY_ZOOM_PUBLIC_URL", url),
            ]),
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("zoom.public_url"),
            "{url}: {error:#}"
        );
    }
    let console = Config::load(None, env(&[("FERRY_CONSOLE_ADDR", "0.0.0.0:9000")])).unwrap_err();
    assert!(
        format!("{console:#}").contains("console.insecure"),
        "{console:#}"
    );
}
