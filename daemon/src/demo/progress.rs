//! Live progress while the recordings are decided and copied: the
//! `WatchJobs` stream shown by `ferry jobs watch`'s view (a bar per transfer
//! on a terminal, plain lines otherwise), until every job has finished.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_control::api;
use ferry_control::api::job_service_client::JobServiceClient;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cli::client::AuthChannel;
use crate::cli::watch::tracker::is_final;
use crate::cli::watch::view::View;

/// How long the demo waits for its transfers before calling it a failure.
const SETTLE_WITHIN: Duration = Duration::from_secs(180);
/// How long the watch may trail the daemon's answer that all jobs finished.
const WATCH_CATCH_UP: Duration = Duration::from_secs(3);

/// A watch running in the background. Nothing else may print while it runs:
/// on a terminal it owns the bottom of the screen.
pub struct Progress {
    stop: CancellationToken,
    /// Jobs the watch has shown in a final state.
    shown_final: watch::Receiver<HashSet<String>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Progress {
    /// Subscribes first, so no event after this returns is missed.
    pub async fn start(jobs: &mut JobServiceClient<AuthChannel>) -> anyhow::Result<Progress> {
        let stream = jobs
            .watch_jobs(api::WatchJobsRequest::default())
            .await?
            .into_inner();
        let view = View::choose(false, std::io::stdout().is_terminal())?;
        let stop = CancellationToken::new();
        let (shown_tx, shown_final) = watch::channel(HashSet::new());
        let task = tokio::spawn(follow(stream, view, stop.clone(), shown_tx));
        Ok(Progress {
            stop,
            shown_final,
            task,
        })
    }

    /// Waits until every job in `job_ids` has finished, and returns all the
    /// institution's jobs. The daemon's own list decides (a watch that lags
    /// loses events); the watch then gets a moment to show the last ones.
    pub async fn until_finished(
        mut self,
        jobs: &mut JobServiceClient<AuthChannel>,
        job_ids: &[String],
    ) -> anyhow::Result<Vec<api::Job>> {
        let finished = wait_until_finished(jobs, job_ids).await;
        if finished.is_ok() {
            let shown = self
                .shown_final
                .wait_for(|shown| job_ids.iter().all(|id| shown.contains(id)));
            let _ = tokio::time::timeout(WATCH_CATCH_UP, shown).await;
        }
        self.stop.cancel();
        let watched = self.task.await.context("the progress view panicked")?;
        let jobs = finished?;
        watched?;
        Ok(jobs)
    }
}

async fn wait_until_finished(
    jobs: &mut JobServiceClient<AuthChannel>,
    job_ids: &[String],
) -> anyhow::Result<Vec<api::Job>> {
    let started = Instant::now();
    loop {
        let listed = jobs
            .list_jobs(api::ListJobsRequest {
                page: Some(api::PageRequest {
                    page_size: 1000,
                    page_token: String::new(),
                }),
                ..Default::default()
            })
            .await?
            .into_inner()
            .jobs;
        let finished = |id: &String| listed.iter().any(|j| j.job_id == *id && is_final(j));
        if job_ids.iter().all(finished) {
            return Ok(listed);
        }
        if started.elapsed() > SETTLE_WITHIN {
            let waiting: Vec<&str> = job_ids
                .iter()
                .filter(|id| !finished(id))
                .map(String::as_str)
                .collect();
            anyhow::bail!(
                "jobs {} did not finish within {} s",
                waiting.join(", "),
                SETTLE_WITHIN.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Shows the stream until stopped; the bars always come off the screen.
async fn follow(
    mut stream: tonic::Streaming<api::JobEvent>,
    mut view: View,
    stop: CancellationToken,
    shown_final: watch::Sender<HashSet<String>>,
) -> anyhow::Result<()> {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let result = async {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = ticks.tick() => view.tick(Instant::now())?,
                message = stream.message() => {
                    let Some(event) = message? else {
                        anyhow::bail!("the daemon ended the watch");
                    };
                    let Some(job) = event.job else { continue };
                    let job_id = is_final(&job).then(|| job.job_id.clone());
                    view.event(job, event.progress_only, Instant::now())?;
                    if let Some(job_id) = job_id {
                        shown_final.send_modify(|shown| {
                            shown.insert(job_id);
                        });
                    }
                }
            }
        }
    }
    .await;
    view.finish();
    result
}
