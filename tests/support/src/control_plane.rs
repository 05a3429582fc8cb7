//! The control-plane calls tests and benches make to set a daemon up: an
//! institution with its admin key, configurations, account installs and user
//! syncs, each one gRPC request over the daemon's public API. They own no
//! state and check nothing beyond what the call answers; what a test expects
//! of the answer is the test's business.

use anyhow::Context;
use ferry_control::api;
use ferry_daemon::cli::client::Clients;

/// An institution with an admin key, made through the API by the operator.
pub struct TestInstitution {
    pub institution_id: String,
    pub admin_key: String,
    pub key_id: String,
}

pub async fn create_institution(
    operator: &mut Clients,
    name: &str,
) -> anyhow::Result<TestInstitution> {
    let institution = operator
        .institutions
        .create_institution(api::CreateInstitutionRequest {
            display_name: name.to_string(),
        })
        .await?
        .into_inner();
    let key = operator
        .institutions
        .create_admin_key(api::CreateAdminKeyRequest {
            institution_id: institution.institution_id.clone(),
            name: "tests".into(),
        })
        .await?
        .into_inner();
    Ok(TestInstitution {
        institution_id: institution.institution_id,
        key_id: key.key.context("key metadata")?.key_id,
        admin_key: key.secret,
    })
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
            ..Default::default()
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
            ..Default::default()
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
