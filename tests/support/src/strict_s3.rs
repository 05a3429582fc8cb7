//! A strict S3-protocol server on 127.0.0.1 for the sinks' tests: s3s-fs
//! (files in a temporary folder) behind s3s's HTTP service with SigV4
//! checked, so a client's requests go through aws-sdk-s3, signing, hyper and
//! TCP as in production. s3s-fs falls short of S3 in a few ways that matter
//! to Ferry, so [`StrictUploads`] wraps it and adds what S3 does: unknown
//! upload ids answer `NoSuchUpload` (s3s-fs says `AccessDenied`, or lists no
//! parts), ListParts carries each part's ETag and CRC32C (s3s-fs gives sizes
//! only), UploadPart verifies `x-amz-checksum-crc32c` (s3s-fs ignores it),
//! and ListMultipartUploads exists (s3s-fs does not implement it). It also
//! pages both listings two entries at a time, so a client's pagination runs,
//! and can answer `503 SlowDown` with a Retry-After on demand.
//!
//! It stands in for S3's behaviour, not its speed: it must never be used to
//! measure anything (the benches' [`crate::discard_s3`] is for that).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use ferry_control::secrets::Secret;
use ferry_daemon::transfer::sink::S3Settings;
use ferry_daemon::transfer::trust::ClientTrust;
use futures::TryStreamExt as _;
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput,
    GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, ListMultipartUploadsInput,
    ListMultipartUploadsOutput, ListPartsInput, ListPartsOutput, MultipartUpload, StreamingBlob,
    UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

const ACCESS_KEY_ID: &str = "ferry-test-access-key";
const SECRET_ACCESS_KEY: &str = "ferry-test-secret-key-0123456789";
const BUCKET: &str = "recordings";
/// The server's page size for ListParts and ListMultipartUploads.
const PAGE_SIZE: usize = 2;

/// The running server; its listener lives as long as the test's runtime.
pub struct StrictS3 {
    addr: SocketAddr,
    root: tempfile::TempDir,
    pub controls: Arc<Controls>,
}

impl StrictS3 {
    /// Starts the server with an empty bucket. Without
    /// `list_uploads_supported`, ListMultipartUploads answers as plain
    /// s3s-fs does: `NotImplemented`.
    pub async fn start(list_uploads_supported: bool) -> StrictS3 {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let file_system = s3s_fs::FileSystem::new(root.path()).unwrap();
        let controls = Arc::new(Controls::default());
        let strict = StrictUploads {
            inner: file_system,
            uploads: Mutex::new(HashMap::new()),
            list_uploads_supported,
            controls: Arc::clone(&controls),
        };
        let mut builder = s3s::service::S3ServiceBuilder::new(strict);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
        ));
        let service = builder.build();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let http =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let connection = http
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        StrictS3 {
            addr,
            root,
            controls,
        }
    }

    /// S3 sink settings for this server, with its credentials.
    pub fn settings(&self) -> S3Settings {
        StrictS3::settings_for(format!("http://{}", self.addr))
    }

    /// The same settings, for another endpoint.
    pub fn settings_for(endpoint: String) -> S3Settings {
        S3Settings {
            endpoint: Some(endpoint),
            region: "us-east-1".into(),
            bucket: BUCKET.into(),
            path_style: true,
            access_key_id: ACCESS_KEY_ID.into(),
            secret_access_key: Secret::new(SECRET_ACCESS_KEY),
            session_token: None,
            checksums: true,
            trust: ClientTrust::builtin(),
        }
    }

    /// s3s-fs keeps an object as the file `root/bucket/key`.
    pub fn read_object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.object_path(key)).ok()
    }

    fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(Path::new(key))
    }
}

/// What a test steers and observes while the server runs.
#[derive(Default)]
pub struct Controls {
    /// Answer this many of the next CreateMultipartUpload and UploadPart
    /// requests with `503 SlowDown` and `Retry-After: 3`.
    pub throttle_next: AtomicU32,
    /// UploadPart requests received, and how many carried a CRC32C.
    pub parts_seen: AtomicU32,
    pub checksums_seen: AtomicU32,
}

struct UploadState {
    bucket: String,
    key: String,
    initiated: std::time::SystemTime,
    parts: BTreeMap<i32, PartState>,
}

struct PartState {
    etag: s3s::dto::ETag,
    crc32c: Option<String>,
}

/// s3s-fs with S3's multipart bookkeeping on top (see the module comment).
pub struct StrictUploads {
    inner: s3s_fs::FileSystem,
    uploads: Mutex<HashMap<String, UploadState>>,
    list_uploads_supported: bool,
    controls: Arc<Controls>,
}

impl StrictUploads {
    fn throttle(&self) -> S3Result<()> {
        let throttled = self
            .controls
            .throttle_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !throttled {
            return Ok(());
        }
        let mut error =
            S3Error::with_message(S3ErrorCode::SlowDown, "please reduce your request rate");
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("3"),
        );
        error.set_headers(headers);
        Err(error)
    }

    fn known(&self, upload_id: &str) -> S3Result<()> {
        if self.uploads.lock().unwrap().contains_key(upload_id) {
            Ok(())
        } else {
            Err(s3_error!(
                NoSuchUpload,
                "the specified upload does not exist"
            ))
        }
    }
}

fn crc32c_base64(chunks: &[Bytes]) -> String {
    let crc = chunks
        .iter()
        .fold(0, |crc, chunk| crc32c::crc32c_append(crc, chunk));
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

#[async_trait::async_trait]
impl S3 for StrictUploads {
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.throttle()?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let response = self.inner.create_multipart_upload(req).await?;
        let upload_id = response.output.upload_id.clone().unwrap_or_default();
        self.uploads.lock().unwrap().insert(
            upload_id,
            UploadState {
                bucket,
                key,
                initiated: std::time::SystemTime::now(),
                parts: BTreeMap::new(),
            },
        );
        Ok(response)
    }

    async fn upload_part(
        &self,
        mut req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.throttle()?;
        self.known(&req.input.upload_id)?;
        let body = req
            .input
            .body
            .take()
            .ok_or_else(|| s3_error!(IncompleteBody))?;
        let chunks: Vec<Bytes> = body
            .try_collect()
            .await
            .map_err(|e| s3_error!(IncompleteBody, "body failed: {e}"))?;
        self.controls.parts_seen.fetch_add(1, Ordering::SeqCst);
        let claimed = req.input.checksum_crc32c.clone();
        if let Some(claimed) = &claimed {
            self.controls.checksums_seen.fetch_add(1, Ordering::SeqCst);
            if *claimed != crc32c_base64(&chunks) {
                return Err(s3_error!(
                    BadDigest,
                    "the CRC32C you specified did not match the calculated checksum"
                ));
            }
        }
        req.input.body = Some(StreamingBlob::wrap(futures::stream::iter(
            chunks.into_iter().map(Ok::<_, std::io::Error>),
        )));
        let (upload_id, part_number) = (req.input.upload_id.clone(), req.input.part_number);
        let response = self.inner.upload_part(req).await?;
        let etag = response
            .output
            .e_tag
            .clone()
            .ok_or_else(|| s3_error!(InternalError, "s3s-fs gave no etag"))?;
        let mut uploads = self.uploads.lock().unwrap();
        let upload = uploads
            .get_mut(&upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        upload.parts.insert(
            part_number,
            PartState {
                etag,
                crc32c: claimed,
            },
        );
        Ok(response)
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.known(&req.input.upload_id)?;
        let upload_id = req.input.upload_id.clone();
        let marker = req.input.part_number_marker.unwrap_or(0);
        // s3s-fs lists what is on disk (numbers and sizes); ETags and
        // checksums come from the bookkeeping.
        let mut response = self.inner.list_parts(req).await?;
        let mut on_disk = response.output.parts.take().unwrap_or_default();
        on_disk.retain(|part| part.part_number.unwrap_or(0) > marker);
        on_disk.sort_by_key(|part| part.part_number);
        let truncated = on_disk.len() > PAGE_SIZE;
        on_disk.truncate(PAGE_SIZE);
        let uploads = self.uploads.lock().unwrap();
        let upload = uploads
            .get(&upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        for part in &mut on_disk {
            if let Some(state) = upload.parts.get(&part.part_number.unwrap_or(0)) {
                part.e_tag = Some(state.etag.clone());
                part.checksum_crc32c = state.crc32c.clone();
            }
        }
        response.output.is_truncated = Some(truncated);
        response.output.next_part_number_marker = if truncated {
            on_disk.last().and_then(|part| part.part_number)
        } else {
            None
        };
        response.output.parts = Some(on_disk);
        Ok(response)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let upload_id = req.input.upload_id.clone();
        {
            let uploads = self.uploads.lock().unwrap();
            let upload = uploads
                .get(&upload_id)
                .ok_or_else(|| s3_error!(NoSuchUpload))?;
            let named = req
                .input
                .multipart_upload
                .as_ref()
                .and_then(|upload| upload.parts.as_ref());
            for part in named.into_iter().flatten() {
                let held = upload.parts.get(&part.part_number.unwrap_or(0));
                let etag_matches = held.is_some_and(|held| {
                    part.e_tag
                        .as_ref()
                        .is_some_and(|etag| etag.value() == held.etag.value())
                });
                let crc_matches = match (&part.checksum_crc32c, held) {
                    (Some(named), Some(held)) => held.crc32c.as_ref() == Some(named),
                    _ => true,
                };
                if !etag_matches || !crc_matches {
                    return Err(s3_error!(
                        InvalidPart,
                        "part {:?} was not uploaded with that ETag and checksum",
                        part.part_number
                    ));
                }
            }
        }
        let response = self.inner.complete_multipart_upload(req).await?;
        self.uploads.lock().unwrap().remove(&upload_id);
        Ok(response)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.known(&req.input.upload_id)?;
        let upload_id = req.input.upload_id.clone();
        let response = self.inner.abort_multipart_upload(req).await?;
        self.uploads.lock().unwrap().remove(&upload_id);
        Ok(response)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        if !self.list_uploads_supported {
            return self.inner.list_multipart_uploads(req).await;
        }
        let input = req.input;
        let prefix = input.prefix.unwrap_or_default();
        let after = (
            input.key_marker.unwrap_or_default(),
            input.upload_id_marker.unwrap_or_default(),
        );
        let uploads = self.uploads.lock().unwrap();
        let mut matching: Vec<(String, String)> = uploads
            .iter()
            .filter(|(_, upload)| upload.bucket == input.bucket && upload.key.starts_with(&prefix))
            .map(|(upload_id, upload)| (upload.key.clone(), upload_id.clone()))
            .filter(|entry| *entry > after)
            .collect();
        matching.sort();
        let truncated = matching.len() > PAGE_SIZE;
        matching.truncate(PAGE_SIZE);
        let last = matching.last().cloned().filter(|_| truncated);
        let output = ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: Some(prefix),
            is_truncated: Some(truncated),
            next_key_marker: last.as_ref().map(|(key, _)| key.clone()),
            next_upload_id_marker: last.map(|(_, upload_id)| upload_id),
            uploads: Some(
                matching
                    .into_iter()
                    .map(|(key, upload_id)| MultipartUpload {
                        initiated: uploads.get(&upload_id).map(|u| u.initiated.into()),
                        key: Some(key),
                        upload_id: Some(upload_id),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        Ok(S3Response::new(output))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.inner.get_object(req).await
    }
}
