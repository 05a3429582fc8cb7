//! Each recording's outcome against what its rule demands, as a row of the
//! final table plus the mismatches found (none, when the rule held).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_control::api::{self, JobState, SkipReason};
use ferry_zoomsim::Delivery;
use ferry_zoomsim::downloads::DownloadServer;

use super::script::{Recording, Twist};
use super::setup::{FREE_ACCOUNT, PILOT_MAX_FILE_BYTES, Stage};
use crate::cli::watch::format::{bytes, duration, state_name};

/// What the daemon, the simulator and the media folder show after the run.
pub struct Evidence<'a> {
    pub stage: &'a Stage,
    pub downloads: &'a DownloadServer,
    pub jobs: &'a [api::Job],
    pub media: &'a [api::Media],
    /// SHA-256 of each file Zoom served, by file id.
    pub served_sha256: &'a HashMap<String, [u8; 32]>,
    /// SHA-256 of each landed object, by media id.
    pub landed_sha256: &'a HashMap<String, std::io::Result<[u8; 32]>>,
    /// `ferry_uploaded_bytes_total` from /metrics: every byte the sink was sent.
    pub uploaded_bytes: Option<u64>,
}

/// One line of the final table.
pub struct Row {
    pub name: &'static str,
    pub decision: String,
    /// What found the recording: webhook, reconcile or backfill.
    pub source: String,
    pub reason: String,
    pub owner: String,
    pub bytes: String,
    pub landed: String,
    /// Empty when the outcome is the expected one.
    pub problems: Vec<String>,
}

impl Row {
    pub(super) fn new(name: &'static str) -> Row {
        Row {
            name,
            decision: "-".into(),
            source: "-".into(),
            reason: String::new(),
            owner: "-".into(),
            bytes: "-".into(),
            landed: "-".into(),
            problems: Vec::new(),
        }
    }

    fn expect(&mut self, holds: bool, problem: impl FnOnce() -> String) {
        if !holds {
            self.problems.push(problem());
        }
    }
}

impl Evidence<'_> {
    pub fn landed_bytes(&self) -> u64 {
        self.media.iter().map(|m| m.size_bytes).sum()
    }

    fn path_of(&self, media: &api::Media) -> PathBuf {
        self.stage.media_dir.join(&media.object_key)
    }

    /// Checks one recording of the script.
    pub fn recording(&self, recording: &Recording, delivered: &[Delivery]) -> Row {
        let mut row = Row::new(recording.name);
        for delivery in delivered {
            row.expect(delivery.status == 200, || {
                format!("a webhook was answered HTTP {}", delivery.status)
            });
        }
        let job_ids: Vec<&str> = delivered.iter().filter_map(Delivery::job_id).collect();
        let Some(job) = job_ids
            .first()
            .and_then(|id| self.jobs.iter().find(|j| j.job_id == *id))
        else {
            row.decision = "no job".into();
            row.problems.push("the webhook created no job".into());
            return row;
        };
        row.expect(job_ids.iter().all(|id| *id == job.job_id), || {
            format!("its deliveries made different jobs: {}", job_ids.join(", "))
        });
        row.decision = state_name(job.state);
        row.source = source_name(job.source);
        if !job.owner_user_id.is_empty() {
            row.owner = self
                .stage
                .owner_email(&job.owner_user_id)
                .unwrap_or(&job.owner_user_id)
                .to_string();
        }
        let expected = &recording.expected;
        row.expect(job.state == expected.state as i32, || {
            format!(
                "the job is {}, expected {}: {}",
                state_name(job.state),
                state_name(expected.state as i32),
                job.message
            )
        });
        row.expect(job.skip_reason == expected.skip_reason as i32, || {
            format!(
                "the skip reason is {}, expected {}",
                reason_name(job.skip_reason),
                reason_name(expected.skip_reason as i32)
            )
        });
        let owner = self.stage.owner_email(&job.owner_user_id);
        row.expect(owner == expected.owner, || {
            format!(
                "the owner is {}, expected {}",
                owner.unwrap_or("nobody"),
                expected.owner.unwrap_or("nobody")
            )
        });
        row.expect(
            job.detected_mid_stream == expected.detected_mid_stream,
            || format!("detected_mid_stream is {}", job.detected_mid_stream),
        );
        let chosen = recording.chosen();
        if let Some((file, _)) = chosen {
            let copied = job.recording_file.as_ref().map(|f| f.file_id.as_str());
            row.expect(copied == Some(file.id.as_str()), || {
                format!("the rules chose file {copied:?}, expected {}", file.id)
            });
        }
        self.landed(
            &mut row,
            job,
            chosen.map(|(file, media)| (file.id.as_str(), media.len())),
        );
        // Only the chosen media file is ever fetched (the companion files
        // that go with it are checked by `companions`).
        let is_companion =
            |id: &str| {
                recording.meeting.files.iter().any(|f| {
                    f.id == id && matches!(f.file_type.as_str(), "TRANSCRIPT" | "CC" | "CHAT")
                })
            };
        for (file_id, _) in &recording.served {
            if chosen.is_some_and(|(file, _)| file.id == *file_id) || is_companion(file_id) {
                continue;
            }
            let requests = self.downloads.stats(file_id).content_requests;
            row.expect(requests == 0, || {
                format!(
                    "file {file_id} was downloaded {requests} time(s) but is not the one to copy"
                )
            });
        }
        row.reason = self.reason(recording, job, &mut row);
        row
    }

    /// The object of a completed job: one, the size Zoom's file has, and
    /// byte-identical to it. Any other job leaves none.
    fn landed(&self, row: &mut Row, job: &api::Job, chosen: Option<(&str, u64)>) {
        let landed: Vec<&api::Media> = self
            .media
            .iter()
            .filter(|m| m.job_id == job.job_id)
            .collect();
        let completed = job.state == JobState::Completed as i32;
        if !completed {
            row.expect(landed.is_empty(), || {
                "a job that did not complete left media".into()
            });
            return;
        }
        let [media] = landed[..] else {
            row.problems
                .push(format!("{} media for one completed job", landed.len()));
            return;
        };
        row.bytes = bytes(media.size_bytes);
        row.landed = self.path_of(media).display().to_string();
        let Some((file_id, len)) = chosen else {
            return;
        };
        row.expect(media.size_bytes == len, || {
            format!("{} bytes landed, Zoom's file has {len}", media.size_bytes)
        });
        let served = self.served_sha256.get(file_id);
        match self.landed_sha256.get(&media.media_id) {
            Some(Ok(sha256)) => row.expect(Some(sha256) == served, || {
                "the landed file's SHA-256 differs from Zoom's file".into()
            }),
            Some(Err(e)) => row
                .problems
                .push(format!("cannot read the landed file: {e}")),
            None => row.problems.push("the landed file was not hashed".into()),
        }
    }

    /// What the table says about the decision, from what happened.
    fn reason(&self, recording: &Recording, job: &api::Job, row: &mut Row) -> String {
        let meeting = &recording.meeting;
        let chosen_type = job
            .recording_file
            .as_ref()
            .map_or("-", |f| f.recording_type.as_str());
        let chosen_id = job
            .recording_file
            .as_ref()
            .map_or("", |f| f.file_id.as_str());
        match &recording.twist {
            Twist::StopStart => {
                row.expect(job.skipped_segment_count == 1, || {
                    format!(
                        "{} later segments passed over, expected 1",
                        job.skipped_segment_count
                    )
                });
                return format!(
                    "first segment only; {} later segment passed over",
                    job.skipped_segment_count
                );
            }
            Twist::Understated { actual_bytes } => {
                let sent = self.downloads.stats(chosen_id).bytes_served;
                let announced = job.recording_file.as_ref().map_or(0, |f| f.file_size);
                row.expect(sent < *actual_bytes, || {
                    format!("zoom sent all {sent} bytes: the transfer was not stopped mid-stream")
                });
                return format!(
                    "{} mid-stream: announced {}, is {}; stopped past the {} cap",
                    reason_name(job.skip_reason),
                    bytes(announced),
                    bytes(*actual_bytes),
                    bytes(PILOT_MAX_FILE_BYTES)
                );
            }
            Twist::Duplicate => return self.duplicate(recording, job, row),
            Twist::BrokenDownload { reset_at } => return self.resumed(job, *reset_at, row),
            Twist::Trashed => return self.trashed(recording, job, row),
            Twist::Plain => {}
        }
        if job.state == JobState::Skipped as i32 {
            let reason = reason_name(job.skip_reason);
            let detail = match SkipReason::try_from(job.skip_reason) {
                Ok(SkipReason::NoMatchingUser) => format!("no user has {}", meeting.host_email),
                Ok(SkipReason::RecordedBeforeInstall) => "started 1 h before it".into(),
                Ok(SkipReason::UserOptedOut) => format!("{} opted out", meeting.host_email),
                Ok(SkipReason::TooLong) => format!(
                    "lasts {}, cap 8h00m",
                    duration(Duration::from_secs(meeting.duration_minutes * 60))
                ),
                Ok(SkipReason::TooLarge) => format!(
                    "announced {}, cap 5.0 GiB",
                    bytes(job.recording_file.as_ref().map_or(0, |f| f.file_size))
                ),
                _ => job.message.clone(),
            };
            return format!("{reason}: {detail}");
        }
        if job.state != JobState::Completed as i32 {
            return job.message.clone();
        }
        let views = meeting
            .files
            .iter()
            .filter(|f| f.file_type == "MP4")
            .count();
        if views > 1 {
            format!("one view of {views}: {chosen_type}")
        } else {
            format!("chose {chosen_type}")
        }
    }

    /// Completed, and then Zoom's copy moved to Zoom's trash: this meeting
    /// and no other.
    fn trashed(&self, recording: &Recording, job: &api::Job, row: &mut Row) -> String {
        let trash = job.zoom_trash.clone().unwrap_or_default();
        row.expect(trash.state == api::ZoomTrashState::Trashed as i32, || {
            format!("zoom's copy was not moved to the trash: {trash:?}")
        });
        let trashed: Vec<String> = self
            .downloads
            .trashed()
            .into_iter()
            .map(|t| t.meeting_uuid)
            .collect();
        row.expect(trashed == [recording.meeting.uuid.clone()], || {
            format!(
                "zoom trashed {} meeting(s), expected this one only",
                trashed.len()
            )
        });
        format!("copied, then zoom's copy trashed ({} call)", trash.attempts)
    }

    /// Two deliveries: one job, one media, one object, one download.
    fn duplicate(&self, recording: &Recording, job: &api::Job, row: &mut Row) -> String {
        let uuid = &recording.meeting.uuid;
        let jobs = self.jobs.iter().filter(|j| j.meeting_uuid == *uuid).count();
        let media: Vec<&api::Media> = self
            .media
            .iter()
            .filter(|m| m.meeting_uuid == *uuid)
            .collect();
        let objects = media
            .first()
            .and_then(|m| self.path_of(m).parent().map(count_files))
            .unwrap_or(0);
        let chosen_id = job
            .recording_file
            .as_ref()
            .map_or("", |f| f.file_id.as_str());
        let downloads = self.downloads.stats(chosen_id).content_requests;
        row.expect(jobs == 1, || format!("{jobs} jobs for the meeting"));
        row.expect(media.len() == 1, || {
            format!("{} media for the meeting", media.len())
        });
        row.expect(objects == 1, || {
            format!("{objects} objects for the meeting")
        });
        row.expect(downloads == 1, || {
            format!("the file was downloaded {downloads} times")
        });
        format!(
            "{} deliveries: {jobs} job, {objects} object, {downloads} download",
            recording.deliveries()
        )
    }

    /// The broken download resumed where the landed parts ended, and no part
    /// went to the sink twice.
    fn resumed(&self, job: &api::Job, reset_at: u64, row: &mut Row) -> String {
        let chosen_id = job
            .recording_file
            .as_ref()
            .map_or("", |f| f.file_id.as_str());
        let stats = self.downloads.stats(chosen_id);
        let size = job.recording_file.as_ref().map_or(0, |f| f.file_size);
        let part_size = self.stage.part_size;
        let resumed_at = match stats.range_starts[..] {
            [0, resumed_at] if resumed_at > 0 => resumed_at,
            _ => {
                row.problems.push(format!(
                    "expected a first request from byte 0 and one resumed request, saw requests from {:?}",
                    stats.range_starts
                ));
                0
            }
        };
        row.expect(
            resumed_at % part_size == 0 && resumed_at <= reset_at,
            || format!("resumed from byte {resumed_at}, not from the end of a landed part"),
        );
        // Zoom sent bytes up to the break, then from the resume point: the
        // bytes before it were fetched once.
        let sent = reset_at + size.saturating_sub(resumed_at);
        row.expect(stats.bytes_served == sent, || {
            format!("zoom sent {} bytes, expected {sent}", stats.bytes_served)
        });
        let landed = self.landed_bytes();
        let resent = self.uploaded_bytes != Some(landed);
        if resent {
            row.problems.push(format!(
                "the sink was sent {} bytes in all, but {landed} landed: some part was sent twice",
                self.uploaded_bytes
                    .map_or_else(|| "an unknown number of".into(), |n| n.to_string())
            ));
        }
        format!(
            "broke at {}, resumed from {} (byte {resumed_at}); {}",
            bytes(reset_at),
            bytes(resumed_at),
            if resent {
                "parts re-sent"
            } else {
                "no part re-sent"
            }
        )
    }

    /// The Free-plan account: its install refused, its recording ignored.
    pub fn free_plan(&self, name: &'static str, free: &Delivery, file_ids: &[String]) -> Row {
        let mut row = Row::new(name);
        row.decision = "install refused".into();
        match &self.stage.free_install {
            Err(status) => row.expect(status.code() == tonic::Code::FailedPrecondition, || {
                format!(
                    "the install was refused with {:?}: {}",
                    status.code(),
                    status.message()
                )
            }),
            Ok(_) => {
                row.decision = "installed".into();
                row.problems
                    .push("a Free-plan account was installed".into());
            }
        }
        let ignored = free.status == 200 && free.body["status"] == "ignored";
        row.expect(ignored, || {
            format!(
                "its webhook was answered HTTP {} {}",
                free.status, free.body
            )
        });
        let jobs = self
            .jobs
            .iter()
            .filter(|j| j.zoom_account_id == FREE_ACCOUNT)
            .count();
        row.expect(jobs == 0, || {
            format!("{jobs} jobs for the Free-plan account")
        });
        for file_id in file_ids {
            row.expect(self.downloads.stats(file_id).content_requests == 0, || {
                "the Free-plan account's recording was downloaded".into()
            });
        }
        row.reason = match &self.stage.free_install {
            Err(status) => format!("{:?}: paid plans only; its webhook ignored", status.code()),
            Ok(_) => "installed".into(),
        };
        row
    }

    /// What holds across the run: one job per recording, and the media
    /// folder holding exactly the landed objects and their companion files
    /// (no unfinished upload left).
    pub fn overall(&self, num_recordings: usize, companion_objects: usize) -> Vec<String> {
        let mut problems = Vec::new();
        if self.jobs.len() != num_recordings {
            problems.push(format!(
                "{} jobs for {num_recordings} recordings",
                self.jobs.len()
            ));
        }
        let unfinished = count_files(&self.stage.media_dir.join(".uploads"));
        let objects = count_files(&self.stage.media_dir) - unfinished;
        if objects != self.media.len() + companion_objects {
            problems.push(format!(
                "the media folder holds {objects} objects for {} media and {companion_objects} \
                 companion files",
                self.media.len()
            ));
        }
        if unfinished != 0 {
            problems.push(format!(
                "{unfinished} files of unfinished uploads were left behind"
            ));
        }
        problems
    }
}

/// A job's source as the table shows it.
pub(super) fn source_name(source: i32) -> String {
    api::JobSource::try_from(source).map_or_else(
        |_| format!("source {source}"),
        |s| {
            s.as_str_name()
                .trim_start_matches("JOB_SOURCE_")
                .to_ascii_lowercase()
        },
    )
}

fn reason_name(reason: i32) -> String {
    SkipReason::try_from(reason).map_or_else(
        |_| format!("reason {reason}"),
        |r| {
            r.as_str_name()
                .trim_start_matches("SKIP_REASON_")
                .to_ascii_lowercase()
        },
    )
}

/// Files under `dir`, at any depth (0 when it does not exist).
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => count_files(&entry.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}
