//! JobService: reading, watching, retrying and cancelling ingest jobs. A
//! completed job's retry fetches just its missing companion files.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tonic::{Request, Response, Status};

use super::ControlContext;
use super::convert;
use super::validate::{page_query, page_response, required_id};
use crate::api;
use crate::api::job_service_server::JobService;
use crate::email;
use crate::ingest::{self, Decision};
use crate::model::{Job, JobFilter, JobRequeue, JobSource, JobState, Timestamp};
use crate::store::{MAX_PAGE_SIZE, PageQuery};
use crate::zoom::Recording;

pub struct JobApi {
    context: Arc<ControlContext>,
}

impl JobApi {
    pub(super) fn new(context: Arc<ControlContext>) -> Self {
        JobApi { context }
    }
}

/// The most jobs a watch's opening snapshot carries.
const WATCH_SNAPSHOT_MAX: usize = 10_000;

impl JobApi {
    /// The jobs a watch opens with: `job_id` whatever its state, or the
    /// institution's transferring jobs, then its queued ones, at most
    /// `WATCH_SNAPSHOT_MAX` in all (each state read by its index, a page at
    /// a time).
    async fn watch_snapshot(
        &self,
        institution_id: &str,
        job_id: Option<&str>,
    ) -> Result<Vec<Job>, Status> {
        if let Some(job_id) = job_id {
            return Ok(vec![
                self.context.store.get_job(institution_id, job_id).await?,
            ]);
        }
        let mut jobs = Vec::new();
        for state in [JobState::Transferring, JobState::Queued] {
            let filter = JobFilter {
                states: vec![state],
                ..JobFilter::default()
            };
            let mut after = None;
            while jobs.len() < WATCH_SNAPSHOT_MAX {
                let size = (WATCH_SNAPSHOT_MAX - jobs.len()).min(MAX_PAGE_SIZE as usize) as u32;
                let page = self
                    .context
                    .store
                    .list_jobs(institution_id, &filter, &PageQuery { after, size })
                    .await?;
                jobs.extend(page.items);
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(jobs)
    }

    /// A completed job's retry fetches just its missing and failed companion
    /// files; the video and the media record stay as they are.
    async fn retry_companions(&self, job: Job) -> Result<Response<api::Job>, Status> {
        let store = &self.context.store;
        let sent_back = store
            .retry_companions(&job.job_id, Timestamp::now())
            .await?;
        if sent_back == 0 {
            return Err(Status::failed_precondition(format!(
                "job {} is completed and none of its companion files is missing or failed; only \
                 skipped, failed or cancelled jobs, or completed ones with missing companions, can \
                 be retried",
                job.job_id
            )));
        }
        tracing::info!(job = %job.job_id, companions = sent_back, "missing companion files requeued by an admin");
        let companions = store.list_companions(&job.job_id).await?;
        let mut job = convert::job(job);
        job.companions = companions
            .into_iter()
            .map(convert::companion_status)
            .collect();
        Ok(Response::new(job))
    }

    /// Runs a skipped job's stored recording through the rules again, as if
    /// its webhook arrived now (with today's users, install and caps).
    async fn decide_again(
        &self,
        institution_id: &str,
        job_id: &str,
        source: JobSource,
    ) -> Result<JobRequeue, Status> {
        let context = &self.context;
        let secrets = context
            .store
            .get_job_secrets(institution_id, job_id)
            .await?;
        let sealed = secrets.sealed_recording.ok_or_else(|| {
            Status::failed_precondition(format!("job {job_id} kept no recording to decide again"))
        })?;
        let recording: Recording = context
            .secret_box
            .open(&sealed)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| {
                Status::internal(format!(
                    "job {job_id}'s stored recording cannot be read (was the encryption key changed?)"
                ))
            })?;
        let token = match &secrets.sealed_download_token {
            Some(sealed) => Some(context.secret_box.open_secret(sealed).map_err(|_| {
                Status::internal(format!("job {job_id}'s download token cannot be read"))
            })?),
            None => None,
        };
        let now = Timestamp::now();
        // A backfill's job keeps the waiver the admin's backfill gave it.
        let origin = ingest::Origin {
            source,
            waiver: (source == JobSource::Backfill).then_some("the backfill that made this job"),
        };
        let decision = ingest::decide(
            context.store.as_ref(),
            &context.secret_box,
            &recording,
            token.as_ref().map(|t| t.expose()),
            &context.caps.for_account(&recording.account_id),
            now,
            now,
            origin,
        )
        .await?;
        let job = match decision {
            Decision::Job(job) if job.institution_id == institution_id => job,
            _ => {
                return Err(Status::failed_precondition(format!(
                    "zoom account {} is no longer installed in this institution",
                    recording.account_id
                )));
            }
        };
        let message = if origin.waiver.is_some() {
            job.message.clone()
        } else {
            String::new()
        };
        match (job.state, job.owner_user_id, job.recording_file) {
            (JobState::Queued, Some(owner_user_id), Some(file)) => Ok(JobRequeue {
                institution_id: institution_id.to_string(),
                job_id: job_id.to_string(),
                now,
                owner_user_id,
                recording_file: Some(file),
                sealed_download_url: job.sealed_download_url,
                message,
            }),
            _ => Err(Status::failed_precondition(format!(
                "the rules still skip job {job_id} ({}): {}",
                job.skip_reason.map_or("unknown", |r| r.as_str()),
                job.message
            ))),
        }
    }
}

type JobEventStream = Pin<Box<dyn Stream<Item = Result<api::JobEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl JobService for JobApi {
    async fn list_jobs(
        &self,
        request: Request<api::ListJobsRequest>,
    ) -> Result<Response<api::ListJobsResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let page = page_query("page", body.page.as_ref())?;
        let filter = JobFilter {
            states: body
                .states
                .iter()
                .map(|s| convert::job_state_from_api(*s))
                .collect::<Result<_, _>>()?,
            skip_reason: convert::skip_reason_from_api(body.skip_reason)?,
            zoom_account_id: Some(body.zoom_account_id.trim().to_string())
                .filter(|s| !s.is_empty()),
            host_email: Some(email::normalize(&body.host_email)).filter(|s| !s.is_empty()),
            created_from: body
                .create_time
                .as_ref()
                .and_then(|r| r.start_time.as_ref())
                .map(|t| convert::from_timestamp("create_time.start_time", t))
                .transpose()?,
            created_before: body
                .create_time
                .as_ref()
                .and_then(|r| r.end_time.as_ref())
                .map(|t| convert::from_timestamp("create_time.end_time", t))
                .transpose()?,
            source: convert::job_source_from_api(body.source)?,
        };
        let page = self
            .context
            .store
            .list_jobs(&institution_id, &filter, &page)
            .await?;
        Ok(Response::new(api::ListJobsResponse {
            page: page_response(&page),
            jobs: page.items.into_iter().map(convert::job).collect(),
        }))
    }

    async fn get_job(
        &self,
        request: Request<api::GetJobRequest>,
    ) -> Result<Response<api::Job>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let job_id = required_id("job_id", &body.job_id)?;
        let job = self.context.store.get_job(&institution_id, &job_id).await?;
        let attempts = self.context.store.job_attempts(&job.job_id).await?;
        let companions = self.context.store.list_companions(&job.job_id).await?;
        let mut job = convert::job(job);
        job.attempts = attempts.into_iter().map(convert::job_attempt).collect();
        job.companions = companions
            .into_iter()
            .map(convert::companion_status)
            .collect();
        Ok(Response::new(job))
    }

    type WatchJobsStream = JobEventStream;

    async fn watch_jobs(
        &self,
        request: Request<api::WatchJobsRequest>,
    ) -> Result<Response<Self::WatchJobsStream>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let job_id = Some(body.job_id.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(job_id) = &job_id {
            // Answer NOT_FOUND now rather than stream nothing forever.
            self.context.store.get_job(&institution_id, job_id).await?;
        }
        // Subscribe before reading the snapshot, so that no change made in
        // between is missed (it may arrive twice: the newer copy wins).
        let events = BroadcastStream::new(self.context.store.subscribe_job_events());
        let snapshot = self
            .watch_snapshot(&institution_id, job_id.as_deref())
            .await?
            .into_iter()
            .map(|job| {
                Ok(api::JobEvent {
                    progress_only: false,
                    snapshot: true,
                    job: Some(convert::job(job)),
                })
            });
        let live = events.filter_map(move |event| match event {
            Ok(event)
                if event.job.institution_id == institution_id
                    && job_id.as_ref().is_none_or(|id| *id == event.job.job_id) =>
            {
                Some(Ok(api::JobEvent {
                    progress_only: event.progress_only,
                    snapshot: false,
                    job: Some(convert::job(event.job)),
                }))
            }
            Ok(_) => None,
            // A watcher that falls far behind loses intermediate updates, not
            // the stream: the next event carries the job's whole state.
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                tracing::debug!(missed, "job watcher lagged");
                None
            }
        });
        let stream = tokio_stream::iter(snapshot).chain(live);
        let stream =
            futures::StreamExt::take_until(stream, self.context.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn retry_job(
        &self,
        request: Request<api::RetryJobRequest>,
    ) -> Result<Response<api::Job>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let job_id = required_id("job_id", &body.job_id)?;
        let job = self.context.store.get_job(&institution_id, &job_id).await?;
        if job.state == JobState::Completed {
            return self.retry_companions(job).await;
        }
        if job.state.is_final() && job.state != JobState::Completed {
            let secrets = self
                .context
                .store
                .get_job_secrets(&institution_id, &job_id)
                .await?;
            // The retention sweep leaves an empty sealed recording behind.
            if secrets
                .sealed_recording
                .is_some_and(|sealed| sealed.0.is_empty())
            {
                return Err(Status::failed_precondition(format!(
                    "job {job_id} can no longer be retried: its download details were erased \
                     by the retention policy ([retention] retry_days after it finished); \
                     Zoom's download links expire long before that"
                )));
            }
        }
        let requeue = match job.state {
            JobState::Failed | JobState::Cancelled => {
                match (&job.owner_user_id, &job.recording_file) {
                    (Some(owner), Some(_)) => JobRequeue {
                        institution_id: institution_id.clone(),
                        job_id: job_id.clone(),
                        now: Timestamp::now(),
                        owner_user_id: owner.clone(),
                        recording_file: None,
                        sealed_download_url: None,
                        message: String::new(),
                    },
                    _ => {
                        return Err(Status::failed_precondition(format!(
                            "job {job_id} has no owner or recording file to transfer"
                        )));
                    }
                }
            }
            JobState::Skipped => {
                self.decide_again(&institution_id, &job_id, job.source)
                    .await?
            }
            state => {
                return Err(Status::failed_precondition(format!(
                    "job {job_id} is {}; only skipped, failed or cancelled jobs can be retried",
                    state.as_str()
                )));
            }
        };
        let job = self.context.store.requeue_job(requeue).await?;
        crate::metrics::count_finished(&job);
        tracing::info!(job = %job_id, "job requeued by an admin");
        Ok(Response::new(convert::job(job)))
    }

    async fn cancel_job(
        &self,
        request: Request<api::CancelJobRequest>,
    ) -> Result<Response<api::Job>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let job_id = required_id("job_id", &body.job_id)?;
        let job = self
            .context
            .store
            .cancel_job(&institution_id, &job_id, Timestamp::now())
            .await?;
        crate::metrics::count_finished(&job);
        tracing::info!(job = %job_id, "job cancelled by an admin");
        Ok(Response::new(convert::job(job)))
    }
}
