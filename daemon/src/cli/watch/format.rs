//! The words of a watch: byte counts, durations and the one line that says
//! what happened to a job. Pure functions, so the wording is tested once and
//! is the same with bars or without.

use std::time::Duration;

use ferry_control::api::{self, JobState, SkipReason};

/// Wide enough for the longest state name, so job ids line up.
const STATE_WIDTH: usize = "transferring".len();

/// A byte count in binary units: `512 B`, `4.0 MiB`, `1.2 GiB`.
pub fn bytes(num_bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if num_bytes < 1024 {
        return format!("{num_bytes} B");
    }
    let mut value = num_bytes as f64 / 1024.0;
    let mut unit = 0;
    // Move up a unit before `{:.1}` would print 1024.0.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration rounded up to the second: `0s`, `42s`, `3m05s`, `2h07m`.
pub fn duration(duration: Duration) -> String {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

pub fn state_name(state: i32) -> String {
    JobState::try_from(state).map_or_else(
        |_| format!("state {state}"),
        |s| snake(s.as_str_name(), "JOB_STATE_"),
    )
}

fn skip_reason_name(reason: i32) -> String {
    SkipReason::try_from(reason).map_or_else(
        |_| format!("reason {reason}"),
        |r| snake(r.as_str_name(), "SKIP_REASON_"),
    )
}

fn snake(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

/// The bytes a job expects to copy, when anyone knows.
pub fn total_bytes(job: &api::Job) -> Option<u64> {
    let announced = job.recording_file.as_ref().map_or(0, |f| f.file_size);
    [job.total_bytes, announced].into_iter().find(|&n| n > 0)
}

/// `job_… "Topic" (host@example.edu)`, leaving out what the job lacks.
pub fn job_label(job: &api::Job) -> String {
    let mut label = job.job_id.clone();
    if !job.topic.is_empty() {
        label.push_str(&format!(" {:?}", job.topic));
    }
    if !job.host_email.is_empty() {
        label.push_str(&format!(" ({})", job.host_email));
    }
    label
}

/// Where a transfer stands: `4.0 MiB of 16.0 MiB (25%), 2.0 MiB/s, 6s left`.
pub fn progress(
    num_bytes: u64,
    total: Option<u64>,
    bytes_per_sec: Option<u64>,
    left: Option<Duration>,
) -> String {
    let mut text = match total {
        Some(total) => {
            let percent = (u128::from(num_bytes) * 100 / u128::from(total.max(1))).min(100);
            format!("{} of {} ({percent}%)", bytes(num_bytes), bytes(total))
        }
        None => bytes(num_bytes),
    };
    if let Some(rate) = bytes_per_sec {
        text.push_str(&format!(", {}/s", bytes(rate)));
    }
    if let Some(left) = left {
        text.push_str(&format!(", {} left", duration(left)));
    }
    text
}

/// A line that starts with the state, padded so the job ids line up.
pub fn line(state: &str, rest: &str) -> String {
    format!("{state:<STATE_WIDTH$}  {rest}")
}

/// The line for a job's change of state: what happened and, for a job that
/// did not complete, why, in the daemon's own words.
pub fn state_line(job: &api::Job) -> String {
    let label = job_label(job);
    let message = job.message.trim();
    let because = |fallback: &str| {
        if message.is_empty() {
            fallback.to_string()
        } else {
            message.to_string()
        }
    };
    let (state, rest) = match JobState::try_from(job.state) {
        Ok(JobState::Queued) => {
            let mut rest = label;
            if job.attempt_count > 0 {
                let plural = if job.attempt_count == 1 { "" } else { "s" };
                rest.push_str(&format!(" after {} attempt{plural}", job.attempt_count));
            }
            if !message.is_empty() {
                rest.push_str(&format!(": {message}"));
            }
            ("queued", rest)
        }
        Ok(JobState::Transferring) => {
            let mut rest = label;
            if let Some(total) = total_bytes(job) {
                rest.push_str(&format!(": {}", bytes(total)));
            }
            if job.attempt_count > 1 {
                rest.push_str(&format!(", attempt {}", job.attempt_count));
            }
            ("transferring", rest)
        }
        Ok(JobState::Completed) => {
            let mut rest = format!("{label}: {}", bytes(job.bytes_transferred));
            if !job.media_id.is_empty() {
                rest.push_str(&format!(" as media {}", job.media_id));
            }
            ("completed", rest)
        }
        Ok(JobState::Skipped) => (
            "skipped",
            format!(
                "{label}: {}: {}",
                skip_reason_name(job.skip_reason),
                because("no reason given")
            ),
        ),
        Ok(JobState::Failed) => ("failed", format!("{label}: {}", because("no reason given"))),
        Ok(JobState::Cancelled) => ("cancelled", label),
        Ok(JobState::Unspecified) | Err(_) => {
            return line(&state_name(job.state), &label);
        }
    };
    line(state, &rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_binary_units_with_one_decimal() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(4 * 1024 * 1024), "4.0 MiB");
        assert_eq!(bytes(1024 * 1024 - 1), "1.0 MiB", "never 1024.0 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024 + 200 * 1024 * 1024), "5.2 GiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn durations_round_up_to_the_second() {
        assert_eq!(duration(Duration::ZERO), "0s");
        assert_eq!(duration(Duration::from_millis(1)), "1s");
        assert_eq!(duration(Duration::from_secs(59)), "59s");
        assert_eq!(duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(
            duration(Duration::from_secs(2 * 3600 + 7 * 60 + 59)),
            "2h07m"
        );
    }

    #[test]
    fn progress_says_what_is_known() {
        let mib = 1024 * 1024;
        assert_eq!(
            progress(
                4 * mib,
                Some(16 * mib),
                Some(2 * mib),
                Some(Duration::from_secs(6))
            ),
            "4.0 MiB of 16.0 MiB (25%), 2.0 MiB/s, 6s left"
        );
        assert_eq!(progress(4 * mib, None, None, None), "4.0 MiB");
        assert_eq!(
            progress(20 * mib, Some(16 * mib), None, None),
            "20.0 MiB of 16.0 MiB (100%)",
            "an understated size never shows more than 100%"
        );
    }

    fn job(state: JobState) -> api::Job {
        api::Job {
            job_id: "job_1".into(),
            topic: "Week 3".into(),
            host_email: "elisa@example.edu".into(),
            state: state as i32,
            ..Default::default()
        }
    }

    #[test]
    fn finished_jobs_say_how_they_ended() {
        let mut completed = job(JobState::Completed);
        completed.bytes_transferred = 16 * 1024 * 1024;
        completed.media_id = "med_9".into();
        assert_eq!(
            state_line(&completed),
            "completed     job_1 \"Week 3\" (elisa@example.edu): 16.0 MiB as media med_9"
        );
        let mut failed = job(JobState::Failed);
        failed.message = "Allow Downloads is off".into();
        assert!(state_line(&failed).ends_with("(elisa@example.edu): Allow Downloads is off"));
        assert!(state_line(&job(JobState::Failed)).ends_with(": no reason given"));
        assert_eq!(
            state_line(&job(JobState::Cancelled)),
            "cancelled     job_1 \"Week 3\" (elisa@example.edu)"
        );
    }

    #[test]
    fn skips_give_the_reason_and_the_message() {
        let mut skipped = job(JobState::Skipped);
        skipped.skip_reason = SkipReason::NoMatchingUser as i32;
        skipped.message = "no active user has the email elisa@example.edu".into();
        assert_eq!(
            state_line(&skipped),
            "skipped       job_1 \"Week 3\" (elisa@example.edu): no_matching_user: \
             no active user has the email elisa@example.edu"
        );
    }

    #[test]
    fn requeues_and_new_attempts_are_counted() {
        let mut queued = job(JobState::Queued);
        assert_eq!(
            state_line(&queued),
            "queued        job_1 \"Week 3\" (elisa@example.edu)"
        );
        queued.attempt_count = 2;
        queued.message = "the download broke off".into();
        assert!(
            state_line(&queued).ends_with(" after 2 attempts: the download broke off"),
            "{}",
            state_line(&queued)
        );
        let mut transferring = job(JobState::Transferring);
        transferring.total_bytes = 2048;
        transferring.attempt_count = 3;
        assert!(state_line(&transferring).ends_with(": 2.0 KiB, attempt 3"));
    }

    #[test]
    fn labels_leave_out_what_is_missing_and_unknown_states_still_print() {
        let bare = api::Job {
            job_id: "job_2".into(),
            state: 42,
            ..Default::default()
        };
        assert_eq!(job_label(&bare), "job_2");
        assert_eq!(state_line(&bare), "state 42      job_2");
    }
}
