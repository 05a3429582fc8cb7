//! Institutions, keys, configurations and installs over gRPC: who may call
//! what, the install rules, and how secrets are stored.

use ferry_control::api;
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::support::*;

#[tokio::test]
async fn calls_without_a_valid_key_are_unauthenticated() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut anonymous = daemon.clients(None).await.unwrap();
    assert_status(
        anonymous
            .institutions
            .list_institutions(api::ListInstitutionsRequest::default())
            .await,
        Code::Unauthenticated,
        "missing authorization",
    );
    let mut wrong = daemon.clients(Some("fak_not-a-real-key")).await.unwrap();
    assert_status(
        wrong
            .configurations
            .list_zoom_configurations(api::ListZoomConfigurationsRequest::default())
            .await,
        Code::Unauthenticated,
        "unknown or revoked key",
    );

    let mut operator = daemon.operator().await.unwrap();
    let institution = create_institution(&mut operator, "Example U")
        .await
        .unwrap();
    let mut admin = daemon.clients(Some(&institution.admin_key)).await.unwrap();
    admin
        .institutions
        .get_institution(api::GetInstitutionRequest::default())
        .await
        .unwrap();
    let revoked = operator
        .institutions
        .revoke_admin_key(api::RevokeAdminKeyRequest {
            key_id: institution.key_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    assert_status(
        admin
            .institutions
            .get_institution(api::GetInstitutionRequest::default())
            .await,
        Code::Unauthenticated,
        "revoked",
    );
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn only_the_operator_creates_institutions_and_keys() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let mut admin = daemon.clients(Some(&a.admin_key)).await.unwrap();
    assert_status(
        admin
            .institutions
            .create_institution(api::CreateInstitutionRequest {
                display_name: "X".into(),
            })
            .await,
        Code::PermissionDenied,
        "operator",
    );
    assert_status(
        admin
            .institutions
            .create_admin_key(api::CreateAdminKeyRequest {
                institution_id: a.institution_id.clone(),
                name: "escalate".into(),
            })
            .await,
        Code::PermissionDenied,
        "operator",
    );
    // The operator must say which institution it acts on.
    assert_status(
        operator
            .configurations
            .list_zoom_configurations(api::ListZoomConfigurationsRequest::default())
            .await,
        Code::InvalidArgument,
        "institution_id",
    );
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn a_key_of_one_institution_never_sees_another() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let b = create_institution(&mut operator, "B").await.unwrap();
    let mut admin_a = daemon.clients(Some(&a.admin_key)).await.unwrap();
    let mut admin_b = daemon.clients(Some(&b.admin_key)).await.unwrap();

    let config_a = create_configuration(&mut admin_a, "Main").await;
    let config_id = config_a.configuration.unwrap().configuration_id;
    install(
        &mut admin_a,
        &config_a.configuration_token,
        "acct-a",
        api::ZoomPlan::Pro,
    )
    .await
    .unwrap();
    sync(
        &mut admin_a,
        api::SyncMode::Upsert,
        vec![user("a1", "alice@a.edu", "", api::UserRole::Instructor)],
    )
    .await
    .unwrap();
    let alice = admin_a
        .users
        .lookup_user_by_email(api::LookupUserByEmailRequest {
            institution_id: String::new(),
            email: "alice@a.edu".into(),
        })
        .await
        .unwrap()
        .into_inner();

    // B names A's institution: NOT_FOUND, as for one that does not exist.
    assert_status(
        admin_b
            .institutions
            .get_institution(api::GetInstitutionRequest {
                institution_id: a.institution_id.clone(),
            })
            .await,
        Code::NotFound,
        "not found",
    );
    assert_status(
        admin_b
            .configurations
            .list_zoom_configurations(api::ListZoomConfigurationsRequest {
                institution_id: a.institution_id.clone(),
                page: None,
            })
            .await,
        Code::NotFound,
        "not found",
    );
    // B names A's resources from its own scope: NOT_FOUND, nothing changes.
    for result in [
        admin_b
            .configurations
            .get_zoom_configuration(api::GetZoomConfigurationRequest {
                configuration_id: config_id.clone(),
                institution_id: String::new(),
            })
            .await
            .map(|_| ()),
        admin_b
            .configurations
            .rotate_zoom_configuration_token(api::RotateZoomConfigurationTokenRequest {
                configuration_id: config_id.clone(),
                institution_id: String::new(),
            })
            .await
            .map(|_| ()),
        admin_b
            .configurations
            .delete_zoom_configuration(api::DeleteZoomConfigurationRequest {
                configuration_id: config_id.clone(),
                institution_id: String::new(),
            })
            .await
            .map(|_| ()),
        admin_b
            .accounts
            .get_zoom_account(api::GetZoomAccountRequest {
                zoom_account_id: "acct-a".into(),
                institution_id: String::new(),
            })
            .await
            .map(|_| ()),
        admin_b
            .accounts
            .uninstall_zoom_account(api::UninstallZoomAccountRequest {
                zoom_account_id: "acct-a".into(),
                institution_id: String::new(),
            })
            .await
            .map(|_| ()),
        admin_b
            .users
            .get_user(api::GetUserRequest {
                user_id: alice.user_id.clone(),
                institution_id: String::new(),
            })
            .await
            .map(|_| ()),
        admin_b
            .users
            .lookup_user_by_email(api::LookupUserByEmailRequest {
                institution_id: String::new(),
                email: "alice@a.edu".into(),
            })
            .await
            .map(|_| ()),
    ] {
        assert_status(result, Code::NotFound, "");
    }
    let listed = admin_b
        .configurations
        .list_zoom_configurations(api::ListZoomConfigurationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.configurations.is_empty());
    let institutions = admin_b
        .institutions
        .list_institutions(api::ListInstitutionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        institutions
            .institutions
            .iter()
            .map(|i| &i.institution_id)
            .collect::<Vec<_>>(),
        vec![&b.institution_id]
    );
    // A's things are untouched.
    let account = admin_a
        .accounts
        .get_zoom_account(api::GetZoomAccountRequest {
            zoom_account_id: "acct-a".into(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(account.uninstall_time.is_none());
    install(
        &mut admin_a,
        &config_a.configuration_token,
        "acct-a",
        api::ZoomPlan::Pro,
    )
    .await
    .expect("A's token was not rotated by B");
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn install_rules_follow_the_seed() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let b = create_institution(&mut operator, "B").await.unwrap();
    let mut admin_a = daemon.clients(Some(&a.admin_key)).await.unwrap();
    let mut admin_b = daemon.clients(Some(&b.admin_key)).await.unwrap();
    let config_a = create_configuration(&mut admin_a, "Main").await;
    let config_a2 = create_configuration(&mut admin_a, "Law school").await;
    let config_b = create_configuration(&mut admin_b, "Main").await;
    // Installing needs no bearer key: the configuration token is the credential.
    let mut marketplace = daemon.clients(None).await.unwrap();

    assert_status(
        install(
            &mut marketplace,
            &config_a.configuration_token,
            "free-acct",
            api::ZoomPlan::Free,
        )
        .await,
        Code::FailedPrecondition,
        "paid plan",
    );
    assert_status(
        install(
            &mut marketplace,
            &config_a.configuration_token,
            "x",
            api::ZoomPlan::Unspecified,
        )
        .await,
        Code::InvalidArgument,
        "plan",
    );
    assert_status(
        install(&mut marketplace, "fzc_wrong", "x", api::ZoomPlan::Pro).await,
        Code::Unauthenticated,
        "configuration_token",
    );
    for plan in [
        api::ZoomPlan::Pro,
        api::ZoomPlan::Business,
        api::ZoomPlan::Education,
        api::ZoomPlan::Api,
        api::ZoomPlan::Enterprise,
    ] {
        let account = format!("acct-{}", plan.as_str_name());
        install(
            &mut marketplace,
            &config_a.configuration_token,
            &account,
            plan,
        )
        .await
        .unwrap_or_else(|e| panic!("{plan:?} must install: {e}"));
    }

    let first = install(
        &mut marketplace,
        &config_a.configuration_token,
        "shared",
        api::ZoomPlan::Education,
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let again = install(
        &mut marketplace,
        &config_a.configuration_token,
        "shared",
        api::ZoomPlan::Education,
    )
    .await
    .unwrap();
    assert_eq!(
        first.install_time, again.install_time,
        "re-install is idempotent"
    );
    assert_eq!(first.institution_id, a.institution_id);
    assert_status(
        install(
            &mut marketplace,
            &config_b.configuration_token,
            "shared",
            api::ZoomPlan::Pro,
        )
        .await,
        Code::AlreadyExists,
        "another institution",
    );
    assert_status(
        install(
            &mut marketplace,
            &config_a2.configuration_token,
            "shared",
            api::ZoomPlan::Pro,
        )
        .await,
        Code::AlreadyExists,
        "already installed",
    );

    // Uninstalled in A, the account may bind to B, with a new install time.
    admin_a
        .accounts
        .uninstall_zoom_account(api::UninstallZoomAccountRequest {
            zoom_account_id: "shared".into(),
            institution_id: String::new(),
        })
        .await
        .unwrap();
    let moved = install(
        &mut marketplace,
        &config_b.configuration_token,
        "shared",
        api::ZoomPlan::Pro,
    )
    .await
    .unwrap();
    assert_eq!(moved.institution_id, b.institution_id);
    assert!(
        moved.install_time.unwrap().seconds * 1000
            + i64::from(moved.install_time.unwrap().nanos / 1_000_000)
            > first.install_time.unwrap().seconds * 1000
                + i64::from(first.install_time.unwrap().nanos / 1_000_000)
    );

    // Rotation: the old token stops working at once.
    let rotated = admin_a
        .configurations
        .rotate_zoom_configuration_token(api::RotateZoomConfigurationTokenRequest {
            configuration_id: config_a.configuration.clone().unwrap().configuration_id,
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.configuration_token, config_a.configuration_token);
    assert_status(
        install(
            &mut marketplace,
            &config_a.configuration_token,
            "late",
            api::ZoomPlan::Pro,
        )
        .await,
        Code::Unauthenticated,
        "configuration_token",
    );
    install(
        &mut marketplace,
        &rotated.configuration_token,
        "late",
        api::ZoomPlan::Pro,
    )
    .await
    .unwrap();

    // Deleting a configuration uninstalls its accounts.
    let deleted = admin_a
        .configurations
        .delete_zoom_configuration(api::DeleteZoomConfigurationRequest {
            configuration_id: config_a.configuration.unwrap().configuration_id,
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.uninstalled_zoom_account_ids.len(), 6, "{deleted:?}");
    assert!(
        deleted
            .uninstalled_zoom_account_ids
            .contains(&"late".to_string())
    );
    let remaining = admin_a
        .accounts
        .list_zoom_accounts(api::ListZoomAccountsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(remaining.accounts.is_empty(), "{remaining:?}");
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn configuration_names_are_validated_and_unique() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let mut admin = daemon.clients(Some(&a.admin_key)).await.unwrap();
    let create = |name: String| api::CreateZoomConfigurationRequest {
        institution_id: String::new(),
        display_name: name,
        view_priority: vec![],
        ..Default::default()
    };
    assert_status(
        admin
            .configurations
            .create_zoom_configuration(create("  ".into()))
            .await,
        Code::InvalidArgument,
        "display_name",
    );
    assert_status(
        admin
            .configurations
            .create_zoom_configuration(create("x".repeat(101)))
            .await,
        Code::InvalidArgument,
        "display_name",
    );
    admin
        .configurations
        .create_zoom_configuration(create("x".repeat(100)))
        .await
        .expect("100 characters is allowed");
    admin
        .configurations
        .create_zoom_configuration(create("Main".into()))
        .await
        .unwrap();
    assert_status(
        admin
            .configurations
            .create_zoom_configuration(create("main".into()))
            .await,
        Code::AlreadyExists,
        "display_name",
    );
    assert_status(
        admin
            .configurations
            .create_zoom_configuration(api::CreateZoomConfigurationRequest {
                institution_id: String::new(),
                display_name: "Views".into(),
                view_priority: vec!["speaker_view".into(), "Not A Type!".into()],
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "view_priority[1]",
    );
    assert_status(
        admin
            .configurations
            .list_zoom_configurations(api::ListZoomConfigurationsRequest {
                institution_id: String::new(),
                page: Some(api::PageRequest {
                    page_size: 1,
                    page_token: "%%%".into(),
                }),
            })
            .await,
        Code::InvalidArgument,
        "page.page_token",
    );
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn only_hashes_of_tokens_reach_the_database_file() {
    let daemon = TestDaemon::start().await.unwrap();
    let mut operator = daemon.operator().await.unwrap();
    let a = create_institution(&mut operator, "A").await.unwrap();
    let mut admin = daemon.clients(Some(&a.admin_key)).await.unwrap();
    let config = create_configuration(&mut admin, "Main").await;
    admin
        .accounts
        .install_zoom_account(api::InstallZoomAccountRequest {
            configuration_token: config.configuration_token.clone(),
            zoom_account_id: "acct".into(),
            plan: api::ZoomPlan::Business as i32,
            oauth_credentials: Some(api::ZoomOAuthCredentials {
                client_id: "client-id-1".into(),
                client_secret: "oauth-client-secret-value".into(),
            }),
        })
        .await
        .unwrap();
    let account = admin
        .accounts
        .get_zoom_account(api::GetZoomAccountRequest {
            zoom_account_id: "acct".into(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(account.has_oauth_credentials);
    assert!(!format!("{account:?}").contains("oauth-client-secret-value"));
    let db_path = daemon.data_dir.join("ferry.db");
    let _data_dir = daemon.stop().await;

    // Read every column of every table, WAL included, as raw bytes.
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut everything = Vec::new();
    for table in &tables {
        let mut statement = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let columns = statement.column_count();
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(bytes)
                    | rusqlite::types::ValueRef::Blob(bytes) => {
                        everything.extend_from_slice(bytes);
                        everything.push(b'\n');
                    }
                    _ => {}
                }
            }
        }
    }
    let contains = |needle: &str| {
        everything
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    for secret in [
        a.admin_key.as_str(),
        config.configuration_token.as_str(),
        "oauth-client-secret-value",
    ] {
        assert!(
            !contains(secret),
            "a plaintext secret is stored in the database"
        );
        if secret != "oauth-client-secret-value" {
            let hash = hex::encode(Sha256::digest(secret.as_bytes()));
            assert!(contains(&hash), "the token's SHA-256 should be stored");
        }
    }
    // The database file itself, byte for byte, holds no plaintext either.
    let raw = std::fs::read(&db_path).unwrap();
    if let Some(at) = raw
        .windows(a.admin_key.len())
        .position(|w| w == a.admin_key.as_bytes())
    {
        panic!(
            "plaintext key in file at {at}: {:?}",
            String::from_utf8_lossy(&raw[at.saturating_sub(200)..at + 100])
        );
    }
}

#[tokio::test]
async fn health_and_reflection_serve_stock_clients() {
    let daemon = TestDaemon::start().await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(daemon.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "ferry.v1.JobService", "ferry.v1.UserDirectoryService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            status.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ferry_control::service::SERVICE_NAMES {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} missing from {names:?}"
        );
    }
    assert!(names.contains(&"grpc.health.v1.Health".to_string()));
    let _ = daemon.stop().await;
}
