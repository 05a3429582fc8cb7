//! `ferry jobs watch`: follows the daemon's `WatchJobs` stream and shows it
//! as it happens, with a progress bar per transfer on a terminal, plain lines
//! in a pipe or a file, and one JSON object per event with `--json`.
//!
//! The tracker decides what to show from the events alone; the view only
//! writes it out. The watch never changes a job, and never leaves bars or a
//! half-drawn screen behind, whether it ends by Ctrl-C, the job finishing or
//! the daemon going away.

pub(crate) mod format;
pub(crate) mod tracker;
pub(crate) mod view;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_control::api;
use ferry_control::api::job_service_client::JobServiceClient;

use super::client::AuthChannel;
use super::output::Output;
use view::View;

/// How often silent transfers are checked for (see the tracker's `tick`).
const TICK_EVERY: Duration = Duration::from_secs(1);

pub(super) async fn run(
    client: &mut JobServiceClient<AuthChannel>,
    out: Output,
    institution_id: String,
    job_id: Option<String>,
) -> anyhow::Result<()> {
    let job_id = job_id.filter(|id| !id.trim().is_empty());
    // Once this answers, the daemon is subscribed: nothing after it is missed.
    let mut stream = client
        .watch_jobs(api::WatchJobsRequest {
            institution_id,
            job_id: job_id.clone().unwrap_or_default(),
        })
        .await?
        .into_inner();
    match &job_id {
        Some(id) => eprintln!("watching job {id} until it finishes (Ctrl-C to stop)"),
        None => eprintln!("watching jobs (Ctrl-C to stop)"),
    }
    let mut view = View::choose(out.json, std::io::stdout().is_terminal())?;
    let result = follow(&mut stream, &mut view, job_id).await;
    view.finish();
    result
}

/// Shows events until Ctrl-C, the watched job finishing or stdout closing
/// (all `Ok`), or an error.
async fn follow(
    stream: &mut tonic::Streaming<api::JobEvent>,
    view: &mut View,
    job_id: Option<String>,
) -> anyhow::Result<()> {
    // The stream opens with a snapshot (the watched job as it stands, or the
    // jobs queued and transferring), so a watch started mid-transfer shows
    // it at once, and a watch of a finished job ends after one line.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut ticks = tokio::time::interval(TICK_EVERY);
    loop {
        tokio::select! {
            listened = &mut interrupted => {
                listened.context("cannot listen for Ctrl-C")?;
                return Ok(());
            }
            _ = ticks.tick() => {
                if !written(view.tick(Instant::now()))? {
                    return Ok(());
                }
            }
            message = stream.message() => {
                let Some(event) = message? else {
                    anyhow::bail!("the daemon ended the watch (is it shutting down?)");
                };
                let Some(job) = event.job else { continue };
                let finished = job_id.is_some() && tracker::is_final(&job);
                if !written(view.event(job, event.progress_only, Instant::now()))? || finished {
                    return Ok(());
                }
            }
        }
    }
}

/// Whether to go on after writing: a closed stdout (`ferry jobs watch |
/// head`) ends the watch quietly; any other write error is an error.
fn written(result: std::io::Result<()>) -> anyhow::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}
