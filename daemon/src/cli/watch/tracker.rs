//! The watch as a state machine: job events in, what to show out. It knows
//! no terminal and reads no clock; the caller passes each event's arrival
//! time, so a test can replay a transfer second by second.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use ferry_control::api::{self, JobState};

use super::format;

/// How transfers in progress are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A redrawn bar per transfer; lines for the other changes of state.
    Bars,
    /// Lines only (a log, a pipe): one per change of state, and a progress
    /// line per transfer at most every [`PLAIN_PROGRESS_EVERY`].
    Plain,
}

/// The daemon sends progress up to four times a second per job: a log gets
/// one line per job every few seconds.
pub const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(3);
/// The rate is the average over about this long, steady enough to read.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// A rate over less than this jumps about too much to show.
const MIN_RATE_SPAN: Duration = Duration::from_millis(500);
/// A transfer silent this long lost its final event (a lagging watcher
/// misses events): its bar goes rather than stay on screen for good.
const FORGET_SILENT_AFTER: Duration = Duration::from_secs(120);
/// Finished jobs remembered, so a late progress event cannot bring back a bar.
const REMEMBERED_FINISHED: usize = 1024;

/// Something to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Show {
    /// A line that stays (printed above the bars, if any).
    Line(String),
    /// Draw or redraw a transfer's bar.
    Bar(BarView),
    /// Remove the bar of this job.
    ClearBar(String),
}

/// One transfer's bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BarView {
    pub job_id: String,
    /// `job_… "Topic" (host)`, shown above the bar.
    pub label: String,
    pub num_bytes: u64,
    /// `None` when nobody announced a size: a spinner rather than a bar.
    pub total_bytes: Option<u64>,
    /// Bytes, rate and time left, as text.
    pub status: String,
}

pub struct Tracker {
    style: Style,
    active: HashMap<String, Transfer>,
    finished: HashSet<String>,
    finished_order: VecDeque<String>,
}

/// What the watch knows of one transfer in progress.
struct Transfer {
    label: String,
    num_bytes: u64,
    total_bytes: Option<u64>,
    /// (arrival, bytes) over the last `RATE_WINDOW`, oldest first.
    samples: VecDeque<(Instant, u64)>,
    last_event: Instant,
    /// Plain style: when this transfer last had a line.
    last_line: Option<Instant>,
}

pub fn is_final(job: &api::Job) -> bool {
    matches!(
        JobState::try_from(job.state),
        Ok(JobState::Completed | JobState::Skipped | JobState::Failed | JobState::Cancelled)
    )
}

impl Tracker {
    pub fn new(style: Style) -> Tracker {
        Tracker {
            style,
            active: HashMap::new(),
            finished: HashSet::new(),
            finished_order: VecDeque::new(),
        }
    }

    /// One event from `WatchJobs`, arrived at `now`.
    pub fn apply(&mut self, job: &api::Job, progress_only: bool, now: Instant) -> Vec<Show> {
        if progress_only {
            return self.progress(job, now);
        }
        // Every other event is a change of state (created, claimed, requeued,
        // finished), each worth a line, except that a bar shows a transfer.
        let state = JobState::try_from(job.state).unwrap_or(JobState::Unspecified);
        if state == JobState::Transferring {
            self.finished.remove(&job.job_id);
            let transfer = self
                .active
                .entry(job.job_id.clone())
                .or_insert_with(|| Transfer::new(job, now));
            transfer.label = format::job_label(job);
            transfer.observe(job, now);
            return match self.style {
                Style::Bars => vec![Show::Bar(transfer.view(&job.job_id))],
                Style::Plain => {
                    transfer.last_line = Some(now);
                    vec![Show::Line(format::state_line(job))]
                }
            };
        }
        let mut shows = self.stop(&job.job_id);
        if is_final(job) {
            self.remember_finished(&job.job_id);
        } else {
            self.finished.remove(&job.job_id);
        }
        shows.push(Show::Line(format::state_line(job)));
        shows
    }

    /// Drops transfers that have been silent too long; call it now and then.
    pub fn tick(&mut self, now: Instant) -> Vec<Show> {
        let silent: Vec<String> = self
            .active
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.last_event) >= FORGET_SILENT_AFTER)
            .map(|(id, _)| id.clone())
            .collect();
        silent.iter().flat_map(|id| self.stop(id)).collect()
    }

    fn progress(&mut self, job: &api::Job, now: Instant) -> Vec<Show> {
        if self.finished.contains(&job.job_id) {
            return Vec::new();
        }
        // A watch that started mid-transfer meets the job here first.
        let transfer = self
            .active
            .entry(job.job_id.clone())
            .or_insert_with(|| Transfer::new(job, now));
        transfer.observe(job, now);
        match self.style {
            Style::Bars => vec![Show::Bar(transfer.view(&job.job_id))],
            Style::Plain => {
                let due = transfer
                    .last_line
                    .is_none_or(|at| now.saturating_duration_since(at) >= PLAIN_PROGRESS_EVERY);
                if !due {
                    return Vec::new();
                }
                transfer.last_line = Some(now);
                vec![Show::Line(format::line(
                    "transferring",
                    &format!("{} {}", job.job_id, transfer.status()),
                ))]
            }
        }
    }

    fn stop(&mut self, job_id: &str) -> Vec<Show> {
        match (self.active.remove(job_id), self.style) {
            (Some(_), Style::Bars) => vec![Show::ClearBar(job_id.to_string())],
            _ => Vec::new(),
        }
    }

    fn remember_finished(&mut self, job_id: &str) {
        if self.finished.insert(job_id.to_string()) {
            self.finished_order.push_back(job_id.to_string());
        }
        while self.finished_order.len() > REMEMBERED_FINISHED {
            if let Some(oldest) = self.finished_order.pop_front() {
                self.finished.remove(&oldest);
            }
        }
    }
}

impl Transfer {
    fn new(job: &api::Job, now: Instant) -> Transfer {
        Transfer {
            label: format::job_label(job),
            num_bytes: job.bytes_transferred,
            total_bytes: None,
            samples: VecDeque::new(),
            last_event: now,
            last_line: None,
        }
    }

    fn observe(&mut self, job: &api::Job, now: Instant) {
        if job.bytes_transferred < self.num_bytes {
            // Started over (a source that ignores Range): the old samples
            // would make the rate negative.
            self.samples.clear();
        }
        self.num_bytes = job.bytes_transferred;
        self.total_bytes = format::total_bytes(job).or(self.total_bytes);
        self.last_event = now;
        self.samples.push_back((now, self.num_bytes));
        // Keep the newest sample at least RATE_WINDOW old as the base.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|&(at, _)| now.saturating_duration_since(at) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    fn bytes_per_sec(&self) -> Option<u64> {
        let (&(first_at, first), &(last_at, last)) = (self.samples.front()?, self.samples.back()?);
        let span = last_at.saturating_duration_since(first_at);
        (span >= MIN_RATE_SPAN)
            .then(|| (last.saturating_sub(first) as f64 / span.as_secs_f64()) as u64)
    }

    fn time_left(&self) -> Option<Duration> {
        let rate = self.bytes_per_sec().filter(|&r| r > 0)?;
        let left = self.total_bytes?.saturating_sub(self.num_bytes);
        Some(Duration::from_secs_f64(left as f64 / rate as f64))
    }

    fn status(&self) -> String {
        format::progress(
            self.num_bytes,
            self.total_bytes,
            self.bytes_per_sec(),
            self.time_left(),
        )
    }

    fn view(&self, job_id: &str) -> BarView {
        BarView {
            job_id: job_id.to_string(),
            label: self.label.clone(),
            num_bytes: self.num_bytes,
            total_bytes: self.total_bytes,
            status: self.status(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::SkipReason;

    const MIB: u64 = 1024 * 1024;

    fn job(id: &str, state: JobState, num_bytes: u64) -> api::Job {
        api::Job {
            job_id: id.into(),
            topic: "Week 3".into(),
            host_email: "elisa@example.edu".into(),
            state: state as i32,
            bytes_transferred: num_bytes,
            total_bytes: 16 * MIB,
            ..Default::default()
        }
    }

    fn lines(shows: &[Show]) -> Vec<&str> {
        shows
            .iter()
            .filter_map(|s| match s {
                Show::Line(line) => Some(line.as_str()),
                _ => None,
            })
            .collect()
    }

    fn bar(shows: &[Show]) -> &BarView {
        match shows {
            [Show::Bar(bar)] => bar,
            other => panic!("expected one bar, got {other:?}"),
        }
    }

    #[test]
    fn a_transfer_is_a_bar_until_it_completes_then_a_line() {
        let mut tracker = Tracker::new(Style::Bars);
        let t0 = Instant::now();
        let queued = tracker.apply(&job("job_1", JobState::Queued, 0), false, t0);
        assert_eq!(lines(&queued).len(), 1);
        assert!(lines(&queued)[0].starts_with("queued "), "{queued:?}");

        let started = tracker.apply(&job("job_1", JobState::Transferring, 0), false, t0);
        let started = bar(&started);
        assert_eq!(started.label, "job_1 \"Week 3\" (elisa@example.edu)");
        assert_eq!(started.total_bytes, Some(16 * MIB));

        let progress = tracker.apply(
            &job("job_1", JobState::Transferring, 4 * MIB),
            true,
            t0 + Duration::from_secs(2),
        );
        assert_eq!(
            bar(&progress).status,
            "4.0 MiB of 16.0 MiB (25%), 2.0 MiB/s, 6s left"
        );

        let mut completed = job("job_1", JobState::Completed, 16 * MIB);
        completed.media_id = "med_1".into();
        let done = tracker.apply(&completed, false, t0 + Duration::from_secs(8));
        assert_eq!(done[0], Show::ClearBar("job_1".into()));
        assert_eq!(
            lines(&done),
            ["completed     job_1 \"Week 3\" (elisa@example.edu): 16.0 MiB as media med_1"]
        );
        // A progress event that was overtaken by the completion draws nothing.
        let late = tracker.apply(
            &job("job_1", JobState::Transferring, 15 * MIB),
            true,
            t0 + Duration::from_secs(9),
        );
        assert_eq!(late, []);
    }

    #[test]
    fn a_skip_or_failure_ends_the_bar_with_its_reason() {
        let mut tracker = Tracker::new(Style::Bars);
        let t0 = Instant::now();
        tracker.apply(&job("job_1", JobState::Transferring, 0), true, t0);
        let mut skipped = job("job_1", JobState::Skipped, 21 * MIB);
        skipped.skip_reason = SkipReason::TooLarge as i32;
        skipped.message = "the download passed the 20 MiB cap while streaming".into();
        let shows = tracker.apply(&skipped, false, t0);
        assert_eq!(shows[0], Show::ClearBar("job_1".into()));
        assert!(
            lines(&shows)[0].starts_with("skipped       job_1 ")
                && lines(&shows)[0]
                    .ends_with(": too_large: the download passed the 20 MiB cap while streaming"),
            "{shows:?}"
        );

        // Skipped at intake: never had a bar, still gets its line.
        let mut unmatched = job("job_2", JobState::Skipped, 0);
        unmatched.skip_reason = SkipReason::NoMatchingUser as i32;
        let shows = tracker.apply(&unmatched, false, t0);
        assert_eq!(shows.len(), 1);
        assert!(lines(&shows)[0].contains(": no_matching_user: no reason given"));

        let mut failed = job("job_3", JobState::Failed, 0);
        failed.message = "zoom answered 404".into();
        assert!(lines(&tracker.apply(&failed, false, t0))[0].ends_with(": zoom answered 404"));
    }

    #[test]
    fn the_rate_is_averaged_over_a_window_and_needs_half_a_second() {
        let mut tracker = Tracker::new(Style::Bars);
        let t0 = Instant::now();
        let mut status = |num_bytes, ms| {
            let mut large = job("job_1", JobState::Transferring, num_bytes);
            large.total_bytes = 64 * MIB;
            let shows = tracker.apply(&large, true, t0 + Duration::from_millis(ms));
            bar(&shows).status.clone()
        };
        assert_eq!(
            status(0, 0),
            "0 B of 64.0 MiB (0%)",
            "no rate from one sample"
        );
        assert_eq!(status(MIB / 4, 250), "256.0 KiB of 64.0 MiB (0%)");
        assert_eq!(
            status(MIB, 1000),
            "1.0 MiB of 64.0 MiB (1%), 1.0 MiB/s, 1m03s left"
        );
        // 1 MiB/s for 10 s, then 3 MiB/s: 5 s later only the fast part counts.
        for second in 2..=10 {
            status(second * MIB, second * 1000);
        }
        for step in 1..12 {
            status(10 * MIB + step * 3 * MIB / 2, 10_000 + step * 500);
        }
        assert_eq!(
            status(28 * MIB, 16_000),
            "28.0 MiB of 64.0 MiB (43%), 3.0 MiB/s, 12s left"
        );
    }

    #[test]
    fn a_transfer_that_starts_over_does_not_show_a_negative_rate() {
        let mut tracker = Tracker::new(Style::Bars);
        let t0 = Instant::now();
        tracker.apply(&job("job_1", JobState::Transferring, 0), true, t0);
        tracker.apply(
            &job("job_1", JobState::Transferring, 8 * MIB),
            true,
            t0 + Duration::from_secs(2),
        );
        let restarted = tracker.apply(
            &job("job_1", JobState::Transferring, MIB),
            true,
            t0 + Duration::from_secs(3),
        );
        assert_eq!(bar(&restarted).status, "1.0 MiB of 16.0 MiB (6%)");
        let later = tracker.apply(
            &job("job_1", JobState::Transferring, 3 * MIB),
            true,
            t0 + Duration::from_secs(4),
        );
        assert_eq!(
            bar(&later).status,
            "3.0 MiB of 16.0 MiB (18%), 2.0 MiB/s, 7s left"
        );
    }

    #[test]
    fn an_unknown_size_shows_bytes_and_rate_without_a_time_left() {
        let mut tracker = Tracker::new(Style::Bars);
        let t0 = Instant::now();
        let mut unsized_job = job("job_1", JobState::Transferring, 0);
        unsized_job.total_bytes = 0;
        tracker.apply(&unsized_job, true, t0);
        unsized_job.bytes_transferred = 2 * MIB;
        let shows = tracker.apply(&unsized_job, true, t0 + Duration::from_secs(1));
        assert_eq!(bar(&shows).total_bytes, None);
        assert_eq!(bar(&shows).status, "2.0 MiB, 2.0 MiB/s");
    }

    #[test]
    fn plain_style_prints_each_change_of_state_and_progress_every_few_seconds() {
        let mut tracker = Tracker::new(Style::Plain);
        let t0 = Instant::now();
        let mut printed = Vec::new();
        let mut feed = |job: api::Job, progress_only, ms| {
            let shows = tracker.apply(&job, progress_only, t0 + Duration::from_millis(ms));
            assert!(
                shows.iter().all(|s| matches!(s, Show::Line(_))),
                "plain style has no bars: {shows:?}"
            );
            printed.extend(lines(&shows).into_iter().map(str::to_string));
        };
        feed(job("job_1", JobState::Queued, 0), false, 0);
        feed(job("job_1", JobState::Transferring, 0), false, 100);
        // Progress four times a second for 8 s: 2 MiB/s.
        for step in 1..=32 {
            feed(
                job("job_1", JobState::Transferring, step * MIB / 2),
                true,
                100 + step * 250,
            );
        }
        let mut completed = job("job_1", JobState::Completed, 16 * MIB);
        completed.media_id = "med_1".into();
        feed(completed, false, 8_200);

        let progress: Vec<&String> = printed.iter().filter(|l| l.contains(" of ")).collect();
        assert_eq!(printed.len(), 5, "{printed:#?}");
        assert!(printed[0].starts_with("queued "));
        assert!(printed[1].starts_with("transferring  job_1 \"Week 3\""));
        // 3 s after the transferring line, then 3 s after that.
        assert_eq!(
            progress,
            [
                "transferring  job_1 6.0 MiB of 16.0 MiB (37%), 2.0 MiB/s, 5s left",
                "transferring  job_1 12.0 MiB of 16.0 MiB (75%), 2.0 MiB/s, 2s left",
            ]
        );
        assert!(printed[4].starts_with("completed     job_1"));
    }

    #[test]
    fn plain_style_throttles_each_job_on_its_own() {
        let mut tracker = Tracker::new(Style::Plain);
        let t0 = Instant::now();
        let mut count = HashMap::<String, usize>::new();
        for step in 0..40u64 {
            for id in ["job_a", "job_b"] {
                let shows = tracker.apply(
                    &job(id, JobState::Transferring, step * MIB / 4),
                    true,
                    t0 + Duration::from_millis(step * 250),
                );
                *count.entry(id.to_string()).or_default() += shows.len();
            }
        }
        // Joined mid-transfer: a line at once, then at 3 s, 6 s and 9 s.
        assert_eq!(count["job_a"], 4);
        assert_eq!(count["job_b"], 4);
    }

    #[test]
    fn a_silent_transfer_loses_its_bar_and_a_retry_gets_a_new_one() {
        let mut tracker = Tracker::new(Style::Bars);
        let t0 = Instant::now();
        tracker.apply(&job("job_1", JobState::Transferring, MIB), true, t0);
        assert_eq!(tracker.tick(t0 + Duration::from_secs(60)), []);
        assert_eq!(
            tracker.tick(t0 + FORGET_SILENT_AFTER),
            [Show::ClearBar("job_1".into())]
        );

        tracker.apply(&job("job_2", JobState::Cancelled, 0), false, t0);
        let retried = tracker.apply(&job("job_2", JobState::Queued, 0), false, t0);
        assert!(lines(&retried)[0].starts_with("queued "));
        let again = tracker.apply(&job("job_2", JobState::Transferring, MIB), true, t0);
        assert_eq!(bar(&again).job_id, "job_2", "a retried job shows again");
    }

    #[test]
    fn finished_jobs_are_remembered_within_a_bound() {
        let mut tracker = Tracker::new(Style::Bars);
        let t0 = Instant::now();
        for n in 0..REMEMBERED_FINISHED + 10 {
            tracker.apply(&job(&format!("job_{n}"), JobState::Completed, 0), false, t0);
        }
        assert_eq!(tracker.finished.len(), REMEMBERED_FINISHED);
        assert_eq!(tracker.finished_order.len(), REMEMBERED_FINISHED);
        assert!(!tracker.finished.contains("job_0"));
        assert!(
            tracker
                .finished
                .contains(&format!("job_{}", REMEMBERED_FINISHED + 9))
        );
    }
}
