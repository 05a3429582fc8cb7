//! The gRPC services of `ferry.v1`. Each handler authenticates the caller,
//! scopes the request to an institution, validates every field (naming it in
//! INVALID_ARGUMENT), then calls the store once so that nothing is ever half
//! applied. Handlers never log or return a secret other than the one a call
//! exists to hand out (a new key or token). A store failure reaches the
//! caller through `ErrorClass`'s one code table (`From<StoreError> for
//! Status`); a rule's refusal (the paid plan, a re-decided job) carries the
//! message `rules` gives it.

mod auth;
mod convert;
mod institutions;
mod jobs;
mod media;
mod sections;
mod sync_stream;
mod users;
mod validate;
mod zoom;

use std::sync::Arc;

pub use auth::{Authenticator, Principal};
pub use institutions::InstitutionApi;
pub use jobs::JobApi;
pub use media::MediaApi;
pub use sections::SectionApi;
pub use users::UserDirectoryApi;
pub use zoom::{ZoomAccountApi, ZoomConfigurationApi};

use crate::api;
use crate::secrets::SecretBox;
use crate::store::Store;

/// What every service shares.
#[derive(Clone)]
pub struct ControlContext {
    pub store: Arc<dyn Store>,
    pub auth: Authenticator,
    /// Seals OAuth client secrets before they reach the store.
    pub secret_box: SecretBox,
    /// Most user records one SyncUsers call may carry.
    pub max_sync_records: usize,
    /// The ingest caps, for re-deciding a retried job.
    pub caps: crate::rules::CapsPolicy,
    /// Cancelled when the daemon shuts down: ends long-lived streams
    /// (WatchJobs) so that graceful shutdown does not wait on them forever.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The services, ready to be added to a tonic router.
pub struct ControlServices {
    pub institutions: api::institution_service_server::InstitutionServiceServer<InstitutionApi>,
    pub configurations: api::zoom_configuration_service_server::ZoomConfigurationServiceServer<
        ZoomConfigurationApi,
    >,
    pub accounts: api::zoom_account_service_server::ZoomAccountServiceServer<ZoomAccountApi>,
    pub users: api::user_directory_service_server::UserDirectoryServiceServer<UserDirectoryApi>,
    pub jobs: api::job_service_server::JobServiceServer<JobApi>,
    pub media: api::media_service_server::MediaServiceServer<MediaApi>,
    pub sections: api::section_service_server::SectionServiceServer<SectionApi>,
}

impl ControlServices {
    pub fn new(context: ControlContext) -> Self {
        let context = Arc::new(context);
        ControlServices {
            institutions: api::institution_service_server::InstitutionServiceServer::new(
                InstitutionApi::new(context.clone()),
            ),
            configurations:
                api::zoom_configuration_service_server::ZoomConfigurationServiceServer::new(
                    ZoomConfigurationApi::new(context.clone()),
                ),
            accounts: api::zoom_account_service_server::ZoomAccountServiceServer::new(
                ZoomAccountApi::new(context.clone()),
            ),
            users: api::user_directory_service_server::UserDirectoryServiceServer::new(
                UserDirectoryApi::new(context.clone()),
            ),
            jobs: api::job_service_server::JobServiceServer::new(JobApi::new(context.clone())),
            media: api::media_service_server::MediaServiceServer::new(MediaApi::new(
                context.clone(),
            )),
            sections: api::section_service_server::SectionServiceServer::new(SectionApi::new(
                context,
            )),
        }
    }
}

/// The same services as plain values, for in-process callers (the web
/// console, the Marketplace install) that must authenticate, scope,
/// validate and apply the rules exactly as the gRPC API does: they call the
/// handlers themselves with a `tonic::Request` carrying the caller's
/// `authorization` metadata.
#[derive(Clone)]
pub struct ControlApis {
    pub institutions: Arc<InstitutionApi>,
    pub configurations: Arc<ZoomConfigurationApi>,
    pub accounts: Arc<ZoomAccountApi>,
    pub users: Arc<UserDirectoryApi>,
    pub jobs: Arc<JobApi>,
    pub media: Arc<MediaApi>,
    pub sections: Arc<SectionApi>,
}

impl ControlApis {
    pub fn new(context: ControlContext) -> Self {
        let context = Arc::new(context);
        ControlApis {
            institutions: Arc::new(InstitutionApi::new(context.clone())),
            configurations: Arc::new(ZoomConfigurationApi::new(context.clone())),
            accounts: Arc::new(ZoomAccountApi::new(context.clone())),
            users: Arc::new(UserDirectoryApi::new(context.clone())),
            jobs: Arc::new(JobApi::new(context.clone())),
            media: Arc::new(MediaApi::new(context.clone())),
            sections: Arc::new(SectionApi::new(context)),
        }
    }
}

/// Fully-qualified names of the services, for health reporting.
pub const SERVICE_NAMES: [&str; 7] = [
    "ferry.v1.InstitutionService",
    "ferry.v1.ZoomConfigurationService",
    "ferry.v1.ZoomAccountService",
    "ferry.v1.UserDirectoryService",
    "ferry.v1.JobService",
    "ferry.v1.MediaService",
    "ferry.v1.SectionService",
];
