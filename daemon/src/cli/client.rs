//! Connecting the admin client to a daemon's gRPC API.

use std::path::PathBuf;

use anyhow::Context;
use ferry_control::api;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerAuth {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

pub type AuthChannel = InterceptedService<Channel, BearerAuth>;

pub struct Clients {
    pub institutions: api::institution_service_client::InstitutionServiceClient<AuthChannel>,
    pub configurations:
        api::zoom_configuration_service_client::ZoomConfigurationServiceClient<AuthChannel>,
    pub accounts: api::zoom_account_service_client::ZoomAccountServiceClient<AuthChannel>,
    pub users: api::user_directory_service_client::UserDirectoryServiceClient<AuthChannel>,
    pub jobs: api::job_service_client::JobServiceClient<AuthChannel>,
    pub media: api::media_service_client::MediaServiceClient<AuthChannel>,
    pub sections: api::section_service_client::SectionServiceClient<AuthChannel>,
}

pub struct Connection {
    pub server: String,
    pub token: Option<String>,
    pub ca_cert: Option<PathBuf>,
}

impl Connection {
    pub async fn connect(&self) -> anyhow::Result<Clients> {
        let mut endpoint = Endpoint::from_shared(self.server.clone())
            .with_context(|| format!("--server {:?} is not a valid URL", self.server))?
            // tonic's default today; said here because a client without it
            // waits ~40 ms on the server's delayed ACK for every small request.
            .tcp_nodelay(true);
        if self.server.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(path) = &self.ca_cert {
                let pem = std::fs::read(path)
                    .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).context("TLS configuration")?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to ferry at {}", self.server))?;
        let header =
            match &self.token {
                Some(token) => Some(format!("Bearer {token}").parse().map_err(|_| {
                    anyhow::anyhow!("--token holds characters that cannot be sent")
                })?),
                None => None,
            };
        let auth = BearerAuth { header };
        let with_auth = || InterceptedService::new(channel.clone(), auth.clone());
        Ok(Clients {
            institutions: api::institution_service_client::InstitutionServiceClient::new(
                with_auth(),
            ),
            configurations:
                api::zoom_configuration_service_client::ZoomConfigurationServiceClient::new(
                    with_auth(),
                ),
            accounts: api::zoom_account_service_client::ZoomAccountServiceClient::new(with_auth()),
            users: api::user_directory_service_client::UserDirectoryServiceClient::new(with_auth()),
            jobs: api::job_service_client::JobServiceClient::new(with_auth()),
            media: api::media_service_client::MediaServiceClient::new(with_auth()),
            sections: api::section_service_client::SectionServiceClient::new(with_auth()),
        })
    }
}
