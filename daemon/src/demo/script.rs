//! The recordings Zoom sends during the demo, one for each rule, each with
//! the outcome that rule demands. The simulator serves every media file of
//! every meeting (even those that must never be fetched), so a wrong decision
//! shows up as a wrong outcome rather than as a missing file.

use std::time::Duration;

use ferry_control::api::{JobState, SkipReason};
use ferry_control::model::Timestamp;
use ferry_zoomsim::downloads::{DownloadServer, FileBehavior, LengthHeader};
use ferry_zoomsim::{
    Delivery, FileSpec, GIB, MIB, Meeting, Mp4Layout, SyntheticMedia, ZoomSimulator,
};

use super::setup::{
    ARCHIVE_ACCOUNT, FREE_ACCOUNT, MAIN_ACCOUNT, PILOT_ACCOUNT, PILOT_MAX_FILE_BYTES, Stage,
};

/// The normal lecture is the big one. The simulator paces it so that its
/// progress bar stays on screen for a few seconds: it sleeps after every
/// 64 KiB chunk as if at this rate, and since timers tick in milliseconds the
/// lecture really comes at about a quarter of it (3 s or so).
const LECTURE_BYTES: u64 = 96 * MIB;
const LECTURE_BYTES_PER_SEC: u64 = 128 * MIB;
/// What the pilot account's file really holds, against the 10 MiB it announces.
const UNDERSTATED_ACTUAL_BYTES: u64 = 64 * MIB;
const UNDERSTATED_ANNOUNCED_BYTES: u64 = 10 * MIB;
// The pilot cap sits between the lie and the truth, and below one part, so
// the stop comes before any byte of the file is uploaded.
const _: () = assert!(
    UNDERSTATED_ANNOUNCED_BYTES < PILOT_MAX_FILE_BYTES
        && PILOT_MAX_FILE_BYTES < UNDERSTATED_ACTUAL_BYTES
        && PILOT_MAX_FILE_BYTES < 16 * MIB
);
/// The broken download: 48 MiB whose connection resets after 40 MiB.
const BROKEN_BYTES: u64 = 48 * MIB;
const BROKEN_RESET_AT: u64 = 40 * MIB;

/// The row of the plain lecture, which the demo also maps to a course section.
pub const NORMAL_LECTURE: &str = "normal lecture";

/// What one recording must end as.
pub struct Expected {
    pub state: JobState,
    pub skip_reason: SkipReason,
    /// The owner's primary email.
    pub owner: Option<&'static str>,
    /// The file the rules copy, as an index into the meeting's files.
    pub chosen: Option<usize>,
    pub detected_mid_stream: bool,
}

/// What sets a recording apart beyond its expected job.
pub enum Twist {
    Plain,
    /// Two segments: only the first is copied.
    StopStart,
    /// Zoom's file holds more than `file_size` says.
    Understated {
        actual_bytes: u64,
    },
    /// Zoom delivers the same event twice.
    Duplicate,
    /// The first download breaks off after `reset_at` bytes.
    BrokenDownload {
        reset_at: u64,
    },
    /// Its configuration moves Zoom's copy to the trash after the copy.
    Trashed,
}

pub struct Recording {
    /// The row's name in the final table.
    pub name: &'static str,
    pub meeting: Meeting,
    pub expected: Expected,
    pub twist: Twist,
    /// Every media file the simulator serves for the meeting, by file id.
    pub served: Vec<(String, SyntheticMedia)>,
}

impl Recording {
    pub fn deliveries(&self) -> usize {
        match self.twist {
            Twist::Duplicate => 2,
            _ => 1,
        }
    }

    pub fn chosen(&self) -> Option<(&FileSpec, &SyntheticMedia)> {
        let file = self.meeting.files.get(self.expected.chosen?)?;
        let media = self.served.iter().find(|(id, _)| *id == file.id)?;
        Some((file, &media.1))
    }
}

pub struct Script {
    pub recordings: Vec<Recording>,
    /// A recording of the Free-plan account, which was never installed.
    pub free_meeting: Meeting,
}

/// What Zoom's deliveries were answered.
pub struct Fired {
    /// Per recording, in script order.
    pub deliveries: Vec<Vec<Delivery>>,
    pub free: Delivery,
}

fn completed(owner: &'static str, chosen: usize) -> Expected {
    Expected {
        state: JobState::Completed,
        skip_reason: SkipReason::Unspecified,
        owner: Some(owner),
        chosen: Some(chosen),
        detected_mid_stream: false,
    }
}

fn skipped(reason: SkipReason, owner: Option<&'static str>) -> Expected {
    Expected {
        state: JobState::Skipped,
        skip_reason: reason,
        owner,
        chosen: None,
        detected_mid_stream: false,
    }
}

/// Registers every media file of `meeting` with the simulator (as an MP4 of
/// the announced size, then changed by `adjust`), and its transcript,
/// captions and chat as the text files Zoom makes, and points its download
/// URLs there.
fn serve(
    downloads: &DownloadServer,
    meeting: &mut Meeting,
    adjust: impl Fn(&mut FileBehavior),
) -> Vec<(String, SyntheticMedia)> {
    meeting.download_base = downloads.zoom_base();
    let media_files = meeting
        .files
        .iter()
        .filter(|f| f.file_type == "MP4" || f.file_type == "M4A");
    let mut served = Vec::new();
    for file in media_files {
        let length = Duration::from_secs(file.length_secs.max(0) as u64);
        let media = SyntheticMedia::mp4(file.file_size, length, Mp4Layout::MoovAtEnd, 0);
        let mut behavior = FileBehavior::new(media, &meeting.download_token);
        adjust(&mut behavior);
        served.push((file.id.clone(), behavior.media.clone()));
        downloads.add(&file.id, behavior);
    }
    // The companion files (transcript, captions, chat), as Zoom makes them.
    let token = meeting.download_token.clone();
    let companions = meeting
        .files
        .iter_mut()
        .filter(|f| matches!(f.file_type.as_str(), "TRANSCRIPT" | "CC" | "CHAT"));
    for file in companions {
        let media = match file.file_type.as_str() {
            "TRANSCRIPT" => SyntheticMedia::vtt(1800),
            "CC" => SyntheticMedia::vtt(1200),
            _ => SyntheticMedia::text(
                "10:02:11 From Elisa to Everyone: the slides are on the course page\n\
                 10:14:40 From Sam to Everyone: could you repeat the backpressure example?\n",
            ),
        };
        file.file_size = media.len();
        served.push((file.id.clone(), media.clone()));
        downloads.add(&file.id, FileBehavior::new(media, &token));
    }
    served
}

impl Script {
    pub fn new(stage: &Stage, downloads: &DownloadServer) -> Script {
        let installed = |account: &ferry_control::api::ZoomAccount| {
            account.install_time.as_ref().map_or(0, |t| t.seconds)
        };
        let install = installed(&stage.main_account)
            .max(installed(&stage.pilot_account))
            .max(installed(&stage.archive_account));
        // Every recording but one starts after both installs.
        let at = |minutes: i64| Timestamp::from_unix_seconds(install + 60 + minutes * 60);
        let meeting = |account: &str, host: &str, topic: &str, minutes: i64, files| {
            let mut meeting = Meeting::lecture(account, host, at(minutes)).with_files(files);
            meeting.topic = topic.into();
            meeting
        };
        let mut recordings = Vec::new();
        let mut add =
            |name, mut meeting: Meeting, expected, twist, adjust: &dyn Fn(&mut FileBehavior)| {
                let served = serve(downloads, &mut meeting, adjust);
                recordings.push(Recording {
                    name,
                    meeting,
                    expected,
                    twist,
                    served,
                });
            };
        let as_is = |_: &mut FileBehavior| {};

        let mut lecture = meeting(
            MAIN_ACCOUNT,
            "elisa@example.edu",
            "Lecture 1: Streams / Bytes + Backpressure 🚀",
            0,
            vec![
                FileSpec::mp4("shared_screen_with_speaker_view", 5, 3600, LECTURE_BYTES),
                FileSpec::audio(5, 3600, 900_000),
                FileSpec::chat(5),
                FileSpec::transcript(5, 3600),
                FileSpec::captions(5, 3600),
            ],
        );
        lecture.duration_minutes = 61;
        add(
            NORMAL_LECTURE,
            lecture,
            completed("elisa@example.edu", 0),
            Twist::Plain,
            &|b| b.throttle_bytes_per_sec = Some(LECTURE_BYTES_PER_SEC),
        );

        let mut study_group = meeting(
            MAIN_ACCOUNT,
            "sam@example.edu",
            "Study group (stopped and restarted)",
            90,
            vec![
                FileSpec::mp4("speaker_view", 0, 1200, 24_000_000),
                FileSpec::audio(0, 1200, 600_000),
                FileSpec::mp4("speaker_view", 1500, 900, 11_000_000),
                FileSpec::audio(1500, 900, 450_000),
            ],
        );
        study_group.duration_minutes = 40;
        add(
            "stop/start session",
            study_group,
            completed("sam@example.edu", 0),
            Twist::StopStart,
            &as_is,
        );

        let mut lab = meeting(
            MAIN_ACCOUNT,
            "ELISA.ZOOM@example.edu",
            "Lab 2: Profiling (views recorded separately)",
            180,
            vec![
                FileSpec::mp4("gallery_view", 0, 2700, 18_000_000),
                FileSpec::mp4("speaker_view", 0, 2700, 17_000_000),
                FileSpec::mp4("shared_screen", 0, 2700, 16_000_000),
                FileSpec::mp4("shared_screen_with_speaker_view(CC)", 0, 2700, 21_000_000),
                FileSpec::audio(0, 2700, 700_000),
            ],
        );
        lab.duration_minutes = 45;
        add(
            "separately recorded views",
            lab,
            completed("elisa@example.edu", 3),
            Twist::Plain,
            &as_is,
        );

        add(
            "host with no matching user",
            meeting(
                MAIN_ACCOUNT,
                "guest@elsewhere.org",
                "Guest talk",
                270,
                vec![FileSpec::mp4("speaker_view", 0, 3000, 3_400_000)],
            ),
            skipped(SkipReason::NoMatchingUser, None),
            Twist::Plain,
            &as_is,
        );

        add(
            "opted-out instructor",
            meeting(
                MAIN_ACCOUNT,
                "lee@example.edu",
                "Office hours (the host opted out)",
                300,
                vec![FileSpec::mp4("speaker_view", 0, 1800, 2_400_000)],
            ),
            skipped(SkipReason::UserOptedOut, None),
            Twist::Plain,
            &as_is,
        );

        let archived = meeting(
            ARCHIVE_ACCOUNT,
            "elisa@example.edu",
            "Seminar (archive account: trash after copy)",
            330,
            vec![FileSpec::mp4(
                "shared_screen_with_speaker_view",
                0,
                1800,
                6_000_000,
            )],
        );
        // Zoom's recordings API knows the meeting, so that it can trash it.
        let file_ids: Vec<&str> = archived.files.iter().map(|f| f.id.as_str()).collect();
        downloads.add_meeting(ARCHIVE_ACCOUNT, &archived.uuid, &file_ids);
        add(
            "copied, then moved to Zoom's trash",
            archived,
            completed("elisa@example.edu", 0),
            Twist::Trashed,
            &as_is,
        );

        let mut before_install = Meeting::lecture(
            MAIN_ACCOUNT,
            "elisa@example.edu",
            Timestamp::from_unix_seconds(installed(&stage.main_account) - 3600),
        )
        .with_files(vec![FileSpec::mp4("speaker_view", 0, 3000, 3_400_000)]);
        before_install.topic = "Lecture 0 (recorded before the install)".into();
        add(
            "recorded before the install",
            before_install,
            skipped(SkipReason::RecordedBeforeInstall, None),
            Twist::Plain,
            &as_is,
        );

        let mut hackathon = meeting(
            MAIN_ACCOUNT,
            "elisa@example.edu",
            "Hackathon (9-hour livestream)",
            360,
            vec![FileSpec::mp4("speaker_view", 0, 9 * 3600, 4_000_000_000)],
        );
        hackathon.duration_minutes = 9 * 60;
        add(
            "meeting over 8 hours",
            hackathon,
            skipped(SkipReason::TooLong, Some("elisa@example.edu")),
            Twist::Plain,
            &as_is,
        );

        let mut commencement = meeting(
            MAIN_ACCOUNT,
            "elisa@example.edu",
            "Commencement",
            960,
            vec![FileSpec::mp4(
                "shared_screen_with_speaker_view",
                0,
                5400,
                6 * GIB,
            )],
        );
        commencement.duration_minutes = 90;
        add(
            "file over 5 GiB (metadata)",
            commencement,
            skipped(SkipReason::TooLarge, Some("elisa@example.edu")),
            Twist::Plain,
            &as_is,
        );

        let mut anatomy = meeting(
            PILOT_ACCOUNT,
            "rao@med.example.edu",
            "Anatomy 101 (pilot account)",
            1080,
            vec![FileSpec::mp4(
                "shared_screen_with_speaker_view",
                0,
                1800,
                UNDERSTATED_ANNOUNCED_BYTES,
            )],
        );
        anatomy.duration_minutes = 30;
        let mut understated = skipped(SkipReason::TooLarge, Some("rao@med.example.edu"));
        understated.detected_mid_stream = true;
        // The rules choose the file at intake; the cap stops it on the way.
        understated.chosen = Some(0);
        add(
            "size understated, stopped mid-stream",
            anatomy,
            understated,
            Twist::Understated {
                actual_bytes: UNDERSTATED_ACTUAL_BYTES,
            },
            &|b| {
                b.media = SyntheticMedia::mp4(
                    UNDERSTATED_ACTUAL_BYTES,
                    Duration::from_secs(1800),
                    Mp4Layout::MoovAtEnd,
                    0,
                );
                // Chunked, no Content-Length: a truthful one would end the
                // job before its body, and this row shows the stream's check.
                b.length_header = LengthHeader::Absent;
            },
        );
        add(
            "duplicate delivery",
            meeting(
                MAIN_ACCOUNT,
                "Elisa@Example.edu",
                "Seminar: Rust at the University",
                1200,
                vec![FileSpec::mp4("speaker_view", 0, 3000, 32 * MIB)],
            ),
            completed("elisa@example.edu", 0),
            Twist::Duplicate,
            &as_is,
        );

        add(
            "download breaks and resumes",
            meeting(
                MAIN_ACCOUNT,
                "elisa@example.edu",
                "Lecture 2: Retries and Resumption",
                1440,
                vec![FileSpec::mp4(
                    "shared_screen_with_speaker_view",
                    5,
                    3600,
                    BROKEN_BYTES,
                )],
            ),
            completed("elisa@example.edu", 0),
            Twist::BrokenDownload {
                reset_at: BROKEN_RESET_AT,
            },
            &|b| b.reset_after = Some((BROKEN_RESET_AT, 1)),
        );

        let mut free_meeting = meeting(
            FREE_ACCOUNT,
            "elisa@example.edu",
            "Club meeting (Free-plan account)",
            1500,
            vec![FileSpec::mp4("speaker_view", 0, 1800, 3_400_000)],
        );
        serve(downloads, &mut free_meeting, as_is);
        Script {
            recordings,
            free_meeting,
        }
    }

    /// Delivers every recording once, the Free-plan account's, then Zoom's
    /// retries of the duplicated one, as Zoom would: late, after the first
    /// delivery was already answered. Delivery `i` goes to `zooms[i % n]`
    /// (the replicas in turn; one daemon without replicas), so a retry
    /// reaches another replica than the first delivery did.
    pub async fn fire(&self, zooms: &[ZoomSimulator]) -> anyhow::Result<Fired> {
        let mut turn = zooms.iter().cycle();
        let mut next = || turn.next().expect("at least one daemon to send to");
        let mut deliveries = Vec::new();
        for recording in &self.recordings {
            deliveries.push(vec![next().recording_completed(&recording.meeting).await?]);
        }
        let free = next().recording_completed(&self.free_meeting).await?;
        for (recording, delivered) in self.recordings.iter().zip(&mut deliveries) {
            for _ in 1..recording.deliveries() {
                delivered.push(next().recording_completed(&recording.meeting).await?);
            }
        }
        Ok(Fired { deliveries, free })
    }

    /// How many deliveries Zoom makes in all.
    pub fn num_deliveries(&self) -> usize {
        self.recordings
            .iter()
            .map(Recording::deliveries)
            .sum::<usize>()
            + 1
    }
}
