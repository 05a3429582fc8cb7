//! The floor under the directory bench's gRPC lookups: a bare tonic server
//! that answers `LookupUserByEmail` from the request alone (no
//! authentication, no store, nothing of Ferry's), built like `ferry serve`
//! builds its gRPC server: the same multi-thread runtime, the same single
//! malloc arena, tonic's default server settings, TCP_NODELAY on accepted
//! sockets. The directory bench runs the same load against it as against
//! the daemon; what the daemon spends above this floor is Ferry's own work
//! per call, the rest is tonic, HTTP/2, the runtime and the kernel's
//! loopback TCP on this machine.
//!
//! Run by the bench, not by people: it prints `listening on ADDR` on one
//! line and serves until it is killed. The answer to `user17@...` or
//! `ZOOM17@...` is a user whose external id is `ext-17` (the digits of the
//! address's local part), which is what the bench checks; every other call
//! is UNIMPLEMENTED.

use std::io::Write;

use ferry_control::api;
use ferry_control::api::user_directory_service_server::{
    UserDirectoryService, UserDirectoryServiceServer,
};
use tonic::{Request, Response, Status, Streaming};

fn main() -> anyhow::Result<()> {
    // As `ferry serve` does, before any thread starts.
    ferry_daemon::malloc::limit_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {address}")?;
        stdout.flush()?;
    }
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(UserDirectoryServiceServer::new(Floor))
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

/// What every call but a lookup gets.
fn lookups_only() -> Status {
    Status::unimplemented("the floor server only answers lookups")
}

/// Answers lookups from the request; nothing else.
struct Floor;

/// `ext-N` for an address whose local part ends in the digits N.
fn external_id_of(email: &str) -> Option<String> {
    let local = email.split('@').next()?;
    let digits = local.trim_start_matches(|c: char| !c.is_ascii_digit());
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("ext-{digits}"))
}

#[tonic::async_trait]
impl UserDirectoryService for Floor {
    async fn sync_users(
        &self,
        _request: Request<Streaming<api::SyncUsersRequest>>,
    ) -> Result<Response<api::SyncUsersSummary>, Status> {
        Err(lookups_only())
    }

    async fn lookup_user_by_email(
        &self,
        request: Request<api::LookupUserByEmailRequest>,
    ) -> Result<Response<api::User>, Status> {
        let email = request.into_inner().email;
        let external_id =
            external_id_of(&email).ok_or_else(|| Status::not_found("no digits in the address"))?;
        // As many bytes on the wire as the daemon's answer: every field set.
        let now = prost_types::Timestamp {
            seconds: 1_764_547_200,
            nanos: 123_456_000,
        };
        Ok(Response::new(api::User {
            user_id: "usr_01JDQ8ZK4T7B9M2X5C3V6N1P0R".into(),
            institution_id: "ins_01JDQ8ZJ0A1B2C3D4E5F6G7H8J".into(),
            display_name: format!("User {}", &external_id[4..]),
            external_id,
            email,
            role: api::UserRole::Instructor as i32,
            active: true,
            create_time: Some(now),
            update_time: Some(now),
            ingest_choice: api::IngestChoice::Default as i32,
            ..Default::default()
        }))
    }

    async fn lookup_users_by_email(
        &self,
        _request: Request<api::LookupUsersByEmailRequest>,
    ) -> Result<Response<api::LookupUsersByEmailResponse>, Status> {
        Err(lookups_only())
    }

    async fn get_user(
        &self,
        _request: Request<api::GetUserRequest>,
    ) -> Result<Response<api::User>, Status> {
        Err(lookups_only())
    }

    async fn list_users(
        &self,
        _request: Request<api::ListUsersRequest>,
    ) -> Result<Response<api::ListUsersResponse>, Status> {
        Err(lookups_only())
    }
}
