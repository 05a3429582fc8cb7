//! The webhook intake: `POST /zoom/webhook`. It owns turning Zoom's signed
//! events into durable, deduplicated jobs, decided by the seed's rules.
//!
//! Order of work for every request: bounded read of the raw body, signature
//! check on those exact bytes, parse, decide, commit, answer. The answer is
//! 200 only once the outcome is committed. A refusal's status comes from its
//! `ErrorClass` through the one table in `ferry_control::error`: 503 (Zoom
//! retries) only when the store is unavailable, 500 when a stored record is
//! corrupt and no retry would help.
//! It must never log or return a download URL, download token or secret, and
//! it never copies media itself: the transfer engine does that. A late
//! transcript (`recording.transcript_completed`) is attached to its job as a
//! companion file (`transcript`).

pub mod signature;
#[cfg(test)]
mod tests;
mod transcript;

use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_control::error::{ErrorClass, StoreError};
use ferry_control::ingest::{self, Decision};
use ferry_control::model::{AccountUninstall, RecordingGone, Timestamp};
use ferry_control::rules::CapsPolicy;
use ferry_control::secrets::SecretBox;
use ferry_control::store::Store;
use ferry_control::zoom::{self, DeauthorizedPayload, UrlValidationPayload, WebhookEnvelope};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use std::sync::Arc;

pub use signature::{SignatureError, WebhookVerifier};

use crate::metrics::{JOBS_CREATED_TOTAL, WEBHOOK_ACK_SECONDS, WEBHOOK_REQUESTS_TOTAL};

/// Why a webhook was not accepted; each has one `ErrorClass`, hence one
/// HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("request body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("request body was not received in time")]
    Timeout,
    #[error("request body could not be read")]
    BodyRead,
    #[error("unauthorized: {0}")]
    Unauthorized(#[from] SignatureError),
    #[error("{0}")]
    BadRequest(String),
    #[error("the webhook secret is not configured")]
    NotConfigured,
    /// The store could not decide or record the event. The cause is logged
    /// where it happens; the answer only says whether to retry.
    #[error("{}", if .0.class().is_retryable() {
        "could not record the event; retry later"
    } else {
        "could not record the event"
    })]
    Store(StoreError),
}

impl IntakeError {
    pub fn class(&self) -> ErrorClass {
        match self {
            IntakeError::TooLarge(_) => ErrorClass::ResourceExhausted,
            IntakeError::Timeout => ErrorClass::DeadlineExceeded,
            IntakeError::BodyRead | IntakeError::BadRequest(_) => ErrorClass::InvalidArgument,
            IntakeError::Unauthorized(_) => ErrorClass::Unauthenticated,
            IntakeError::NotConfigured => ErrorClass::Unavailable,
            IntakeError::Store(e) => e.class(),
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.class().http_status())
            .expect("the class table holds valid statuses")
    }

    fn outcome(&self) -> &'static str {
        match self {
            IntakeError::TooLarge(_) => "too_large",
            IntakeError::Timeout => "timeout",
            IntakeError::BodyRead | IntakeError::BadRequest(_) => "rejected_body",
            IntakeError::Unauthorized(_) => "rejected_signature",
            IntakeError::NotConfigured => "not_configured",
            IntakeError::Store(e) if e.class().is_retryable() => "store_unavailable",
            IntakeError::Store(_) => "store_failed",
        }
    }
}

/// Logs a store failure at the step it happened (a retryable one as a
/// warning, one no retry fixes as an error) and turns it into the answer.
fn store_failed(step: &'static str) -> impl FnOnce(StoreError) -> IntakeError {
    move |error| {
        if error.class().is_retryable() {
            tracing::warn!(error = %error, step, "store unavailable for a webhook");
        } else {
            tracing::error!(error = %error, step, "store failed a webhook; a retry will not help");
        }
        IntakeError::Store(error)
    }
}

/// Settings of the intake.
#[derive(Clone, Debug)]
pub struct IntakeConfig {
    pub verifier: Option<WebhookVerifier>,
    pub max_body_bytes: u64,
    pub read_timeout: Duration,
    pub caps: CapsPolicy,
    /// `[companions]`: whether a late transcript is attached.
    pub companions: crate::transfer::companion::CompanionSettings,
}

pub struct Intake {
    store: Arc<dyn Store>,
    secret_box: SecretBox,
    config: IntakeConfig,
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts")
}

impl Intake {
    pub fn new(store: Arc<dyn Store>, secret_box: SecretBox, config: IntakeConfig) -> Self {
        Intake {
            store,
            secret_box,
            config,
        }
    }

    /// Answers one webhook request.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let mut event = "unknown";
        let (outcome, response) = match self.accept(request, &mut event).await {
            Ok((outcome, body)) => (outcome, json_response(StatusCode::OK, body)),
            Err(error) => {
                match error.class() {
                    ErrorClass::Unavailable => {
                        tracing::warn!(error = %error, "webhook not recorded")
                    }
                    ErrorClass::Internal => tracing::error!(error = %error, "webhook not recorded"),
                    _ => tracing::debug!(error = %error, "webhook refused"),
                }
                // A short reason a sender can act on; never echoes the body.
                let body = json!({ "error": error.to_string() });
                (error.outcome(), json_response(error.status(), body))
            }
        };
        metrics::counter!(WEBHOOK_REQUESTS_TOTAL, "event" => event, "outcome" => outcome)
            .increment(1);
        metrics::histogram!(WEBHOOK_ACK_SECONDS).record(started.elapsed().as_secs_f64());
        response
    }

    async fn read_body(
        &self,
        request: Request<Incoming>,
    ) -> Result<(http::HeaderMap, Bytes), IntakeError> {
        let limit = self.config.max_body_bytes;
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(IntakeError::TooLarge(limit));
        }
        let (parts, body) = request.into_parts();
        let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
        match tokio::time::timeout(self.config.read_timeout, limited.collect()).await {
            Err(_) => Err(IntakeError::Timeout),
            Ok(Err(error))
                if error
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(IntakeError::TooLarge(limit))
            }
            Ok(Err(_)) => Err(IntakeError::BodyRead),
            Ok(Ok(collected)) => Ok((parts.headers, collected.to_bytes())),
        }
    }

    /// Sets `event` to the event's type (a fixed set of labels) once read.
    async fn accept(
        &self,
        request: Request<Incoming>,
        event: &mut &'static str,
    ) -> Result<(&'static str, serde_json::Value), IntakeError> {
        let (headers, body) = self.read_body(request).await?;
        let verifier = self
            .config
            .verifier
            .as_ref()
            .ok_or(IntakeError::NotConfigured)?;
        let now = Timestamp::now();
        verifier.verify(&headers, &body, now.0.div_euclid(1000))?;

        let envelope: WebhookEnvelope = serde_json::from_slice(&body).map_err(|e| {
            IntakeError::BadRequest(format!("malformed JSON: {}", short(&e.to_string())))
        })?;
        *event = match envelope.event.as_str() {
            "endpoint.url_validation" => "endpoint.url_validation",
            "recording.completed" => "recording.completed",
            "recording.transcript_completed" => "recording.transcript_completed",
            "app_deauthorized" => "app_deauthorized",
            "recording.deleted" => "recording.deleted",
            "recording.trashed" => "recording.trashed",
            _ => "other",
        };
        match envelope.event.as_str() {
            "endpoint.url_validation" => {
                let payload: UrlValidationPayload = serde_json::from_value(envelope.payload)
                    .map_err(|_| IntakeError::BadRequest("payload.plainToken: missing".into()))?;
                let encrypted = verifier.url_validation_token(&payload.plain_token);
                Ok((
                    "url_validation",
                    json!({ "plainToken": payload.plain_token, "encryptedToken": encrypted }),
                ))
            }
            "recording.completed" => self.recording_completed(envelope, now).await,
            "recording.transcript_completed" => self.transcript_completed(envelope, now).await,
            "app_deauthorized" => {
                let payload: DeauthorizedPayload = serde_json::from_value(envelope.payload)
                    .map_err(|_| IntakeError::BadRequest("payload.account_id: missing".into()))?;
                match self
                    .store
                    .uninstall_account(AccountUninstall {
                        institution_id: None,
                        zoom_account_id: payload.account_id.clone(),
                        now,
                    })
                    .await
                {
                    Ok(_) => {
                        tracing::info!(account = %payload.account_id, "zoom account deauthorized the app")
                    }
                    Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(store_failed("record a deauthorization")(e)),
                }
                // The Marketplace tokens go with the authorization.
                if self
                    .store
                    .delete_account_tokens(&payload.account_id)
                    .await
                    .map_err(store_failed("delete a deauthorized account's tokens"))?
                {
                    tracing::info!(account = %payload.account_id, "zoom account's oauth tokens deleted");
                }
                Ok(("deauthorized", json!({ "status": "uninstalled" })))
            }
            "recording.deleted" | "recording.trashed" => self.recording_gone(&envelope, now).await,
            _ => Ok(("ignored", json!({ "status": "ignored" }))),
        }
    }

    /// A meeting's recordings were trashed or deleted in Zoom: its job, if
    /// still queued or transferring, fails now with a reason instead of
    /// retrying a download that can only fail.
    async fn recording_gone(
        &self,
        envelope: &WebhookEnvelope,
        now: Timestamp,
    ) -> Result<(&'static str, serde_json::Value), IntakeError> {
        let text = |path: &[&str]| {
            path.iter()
                .try_fold(&envelope.payload, |value, key| value.get(*key))
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let account_id = text(&["account_id"])
            .or_else(|| text(&["object", "account_id"]))
            .ok_or_else(|| IntakeError::BadRequest("payload.account_id: missing".into()))?;
        let meeting_uuid = text(&["object", "uuid"])
            .ok_or_else(|| IntakeError::BadRequest("payload.object.uuid: missing".into()))?;
        let message = if envelope.event == "recording.trashed" {
            "the recording was moved to Zoom's trash (recording.trashed) before it was copied; \
             recover it in Zoom, then retry the job"
        } else {
            "the recording was deleted in Zoom (recording.deleted) before it was copied; it can no \
             longer be downloaded"
        };
        let failed = self
            .store
            .fail_gone_recording(RecordingGone {
                zoom_account_id: account_id.clone(),
                meeting_uuid,
                message: message.into(),
                now,
            })
            .await
            .map_err(store_failed("fail a deleted recording's job"))?;
        match failed {
            Some(job) => {
                ferry_control::metrics::count_finished(&job);
                tracing::info!(job = %job.job_id, account = %account_id, event = %envelope.event,
                    "zoom removed a recording before it was copied; its job failed");
                Ok((
                    "job_failed",
                    json!({ "job_id": job.job_id, "state": job.state.as_str() }),
                ))
            }
            None => Ok(("ignored", json!({ "status": "ignored" }))),
        }
    }

    async fn recording_completed(
        &self,
        envelope: WebhookEnvelope,
        now: Timestamp,
    ) -> Result<(&'static str, serde_json::Value), IntakeError> {
        let recording = zoom::parse_recording_completed(&envelope.payload)
            .map_err(|e| IntakeError::BadRequest(e.0))?;
        let event_time = envelope.event_ts.map(Timestamp).unwrap_or(now);
        let decision = ingest::decide(
            self.store.as_ref(),
            &self.secret_box,
            &recording,
            envelope.download_token.as_deref(),
            &self.config.caps.for_account(&recording.account_id),
            event_time,
            now,
            ingest::Origin::WEBHOOK,
        )
        .await
        .map_err(store_failed("decide a recording"))?;
        let job = match decision {
            Decision::NotInstalled => return Ok(("not_installed", json!({ "status": "ignored" }))),
            Decision::Job(job) => job,
        };
        let (job, created) = self
            .store
            .upsert_job(*job)
            .await
            .map_err(store_failed("commit a job"))?;
        if created {
            let reason = job.skip_reason.map_or("", |r| r.as_str());
            metrics::counter!(JOBS_CREATED_TOTAL, "state" => job.state.as_str(), "reason" => reason,
                "source" => job.source.as_str())
            .increment(1);
            ferry_control::metrics::count_finished(&job);
            tracing::info!(job = %job.job_id, account = %job.zoom_account_id, state = job.state.as_str(),
                reason, "recording decided");
        }
        let outcome = if created { "accepted" } else { "duplicate" };
        Ok((
            outcome,
            json!({ "job_id": job.job_id, "state": job.state.as_str(), "duplicate": !created }),
        ))
    }
}

/// serde's messages can quote input; keep only their first line, bounded.
fn short(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(120)
        .collect()
}
