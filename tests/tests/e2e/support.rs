//! Small helpers shared by the test modules.

use ferry_control::api;
use ferry_daemon::cli::client::Clients;
use tonic::Code;

pub use ferry_tests::daemon::*;

/// Asserts a gRPC failure's code and that its message mentions `needle`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    needle: &str,
) {
    match result {
        Ok(value) => panic!("expected {code:?} mentioning {needle:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "unexpected status: {status:?}");
            assert!(
                status.message().contains(needle),
                "status message {:?} should mention {needle:?}",
                status.message()
            );
        }
    }
}

pub fn user(
    external_id: &str,
    email: &str,
    alternate: &str,
    role: api::UserRole,
) -> api::SyncUsersRequest {
    api::SyncUsersRequest {
        item: Some(api::sync_users_request::Item::User(api::UserRecord {
            external_id: external_id.into(),
            email: email.into(),
            alternate_zoom_email: alternate.into(),
            display_name: format!("User {external_id}"),
            role: role as i32,
        })),
    }
}

pub fn header(mode: api::SyncMode) -> api::SyncUsersRequest {
    api::SyncUsersRequest {
        item: Some(api::sync_users_request::Item::Header(
            api::SyncUsersHeader {
                institution_id: String::new(),
                mode: mode as i32,
            },
        )),
    }
}

pub async fn sync(
    clients: &mut Clients,
    mode: api::SyncMode,
    users: Vec<api::SyncUsersRequest>,
) -> Result<api::SyncUsersSummary, tonic::Status> {
    let messages: Vec<_> = std::iter::once(header(mode)).chain(users).collect();
    clients
        .users
        .sync_users(tokio_stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

pub async fn create_configuration(
    clients: &mut Clients,
    name: &str,
) -> api::CreateZoomConfigurationResponse {
    clients
        .configurations
        .create_zoom_configuration(api::CreateZoomConfigurationRequest {
            institution_id: String::new(),
            display_name: name.into(),
            view_priority: vec![],
        })
        .await
        .expect("create configuration")
        .into_inner()
}

pub async fn install(
    clients: &mut Clients,
    token: &str,
    account: &str,
    plan: api::ZoomPlan,
) -> Result<api::ZoomAccount, tonic::Status> {
    clients
        .accounts
        .install_zoom_account(api::InstallZoomAccountRequest {
            configuration_token: token.into(),
            zoom_account_id: account.into(),
            plan: plan as i32,
            oauth_credentials: None,
        })
        .await
        .map(|r| r.into_inner())
}
