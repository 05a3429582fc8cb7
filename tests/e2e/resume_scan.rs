//! The MP4 scan across breaks: the duration cap and the "not a valid MP4"
//! note come out the same whether a recording arrived in one piece or in
//! several, whatever broke in between. Every scenario breaks after the first
//! 5 MiB part landed, so the next attempt resumes with `Range` from the
//! scanner state stored with that part:
//! - on the S3 sink (moto behind the fault proxy): a connection reset, a
//!   stall, and a part upload that fails for good (the attempt gives up on
//!   it and the next attempt sends it again);
//! - on the real binary: `kill -9` mid-transfer and a restart, whose new
//!   worker takes the expired lease over, and the same with the stored scan
//!   states erased (as a version of Ferry before they existed left them).
//!
//! Over the cap: SKIPPED `TOO_LONG`, no object, no multipart upload left.
//! Under it: COMPLETED with the right bytes and no part sent twice.

use std::time::Duration;

use ferry_control::api;
use ferry_test_support::s3_faults::{Fault, FaultRule, S3Operation, SeenRequest};
use ferry_zoomsim::downloads::{DownloadServer, FileBehavior};
use ferry_zoomsim::{FileSpec, Meeting, Mp4Layout, SyntheticMedia};
use sha2::Digest;

use crate::durability::{binary, process_scene};
use crate::s3_engine::S3Transfers;
use crate::support::*;
use crate::transfer::state;

const PART: u64 = 5 * MIB;
const SIZE: u64 = 15 * MIB;
/// 40 % of the file: part 1 has landed, part 2 is on its way.
const BREAK_AT: u64 = 6 * MIB;
const MAX_ATTEMPTS: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recording {
    /// An MP4 of 9 hours (Zoom's metadata says one): over the 8-hour cap.
    Over(Mp4Layout),
    /// An MP4 of 30 minutes.
    Under(Mp4Layout),
    /// A file that is not MP4 at all.
    NotMp4,
}

impl Recording {
    fn media(self, size: u64) -> SyntheticMedia {
        let mp4 = |duration: Duration, layout: Mp4Layout| {
            // Both mvhd versions, one per layout.
            let version = u8::from(layout == Mp4Layout::MoovAtEnd);
            SyntheticMedia::mp4(size, duration, layout, version)
        };
        match self {
            Recording::Over(layout) => mp4(Duration::from_secs(9 * 3600), layout),
            Recording::Under(layout) => mp4(Duration::from_secs(1800), layout),
            Recording::NotMp4 => SyntheticMedia::not_mp4(size),
        }
    }

    /// Whether the verdict needs bytes past the break: a faststart MP4 over
    /// the cap is skipped from its first chunk, before anything breaks.
    fn reaches_the_break(self) -> bool {
        self != Recording::Over(Mp4Layout::FastStart)
    }
}

const RECORDINGS: [Recording; 5] = [
    Recording::Over(Mp4Layout::MoovAtEnd),
    Recording::Over(Mp4Layout::FastStart),
    Recording::Under(Mp4Layout::MoovAtEnd),
    Recording::Under(Mp4Layout::FastStart),
    Recording::NotMp4,
];

#[derive(Clone, Copy, Debug)]
enum Break {
    Reset,
    Stall,
    /// Part 2 is refused `MAX_ATTEMPTS` times: the attempt gives up on it
    /// (the jobs run one after another, so the fault meets this job's part).
    FailedPart,
}

/// Checks the job's outcome for `recording`: the cap decision, the note, and
/// (when it completed) the bytes of the one new object.
async fn assert_outcome(
    t: &S3Transfers,
    recording: Recording,
    done: &api::Job,
    media: &SyntheticMedia,
    keys_before: &[String],
    what: &str,
) {
    let keys = t.bucket.object_keys().await;
    match recording {
        Recording::Over(_) => {
            assert_eq!(
                state(done),
                (api::JobState::Skipped, api::SkipReason::TooLong),
                "{what}: {}",
                done.message
            );
            assert!(done.detected_mid_stream, "{what}");
            assert_eq!(keys, keys_before, "{what}: no object");
        }
        Recording::Under(_) | Recording::NotMp4 => {
            assert_eq!(
                state(done).0,
                api::JobState::Completed,
                "{what}: {}",
                done.message
            );
            let new: Vec<&String> = keys.iter().filter(|k| !keys_before.contains(k)).collect();
            assert_eq!(new.len(), 1, "{what}: one new object, {keys:?}");
            assert!(
                t.bucket.object_sha256(new[0]).await == media.sha256(),
                "{what}: the object holds the recording's bytes"
            );
            let noted = done.message.contains("not a valid MP4");
            assert_eq!(
                noted,
                recording == Recording::NotMp4,
                "{what}: the not-MP4 note: {:?}",
                done.message
            );
        }
    }
    assert_eq!(
        t.bucket.wait_no_unfinished_uploads().await,
        vec![],
        "{what}: no multipart upload left"
    );
}

/// The UploadPart requests that reached S3 (not answered by a fault) for
/// the object of `file_id`, by part number.
fn parts_sent(seen: &[SeenRequest], file_id: &str) -> Vec<u32> {
    let mut sent: Vec<u32> = seen
        .iter()
        .filter(|r| {
            r.operation == S3Operation::UploadPart
                && !r.injected
                && r.status == 200
                && r.path.contains(file_id)
        })
        .filter_map(|r| r.part_number)
        .collect();
    sent.sort_unstable();
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_and_the_note_survive_a_reset_a_stall_and_a_failed_part() {
    let mut t = S3Transfers::start(|c| c.transfer.max_attempts = MAX_ATTEMPTS).await;
    for fault in [Break::Reset, Break::Stall, Break::FailedPart] {
        for recording in RECORDINGS {
            if matches!(fault, Break::FailedPart) && !recording.reaches_the_break() {
                // Skipped at the first chunk, part 2 is never sent: a fault
                // waiting for it would hit the next scenario instead.
                continue;
            }
            let what = format!("{recording:?} with a {fault:?}");
            let media = recording.media(SIZE);
            let meeting = t.meeting(&media, media.len(), |b| match fault {
                Break::Reset => b.reset_after = Some((BREAK_AT, 1)),
                Break::Stall => b.stall_after = Some((BREAK_AT, Duration::from_secs(10))),
                // Slow enough that part 2 fails for good while the download
                // still runs (~2.5 s): the failure, not the end of the
                // stream, ends the first attempt.
                Break::FailedPart => b.throttle_bytes_per_sec = Some(6 * MIB),
            });
            if matches!(fault, Break::FailedPart) {
                t.bucket.proxy.inject(FaultRule {
                    part_number: Some(2),
                    times: MAX_ATTEMPTS,
                    fault: Fault::InternalError,
                });
            }
            let keys_before = t.bucket.object_keys().await;
            let job = t.scene.ingest(&meeting).await;
            let done = t.wait_final(&job.job_id).await;
            assert_outcome(&t, recording, &done, &media, &keys_before, &what).await;

            let file_id = &meeting.files[0].id;
            let stats = t.downloads.stats(file_id);
            let seen = t.bucket.proxy.seen();
            if !recording.reaches_the_break() {
                assert_eq!(stats.range_starts, vec![0], "{what}: {stats:?}");
                continue;
            }
            assert_eq!(
                stats.range_starts,
                vec![0, PART],
                "{what}: one break, then a resume after part 1"
            );
            let history: Vec<(u32, u64)> = done
                .attempts
                .iter()
                .map(|a| (a.attempt, a.resumed_from_bytes))
                .collect();
            assert_eq!(done.attempt_count, 2, "{what}");
            assert_eq!(history, vec![(1, 0), (2, PART)], "{what}");
            if let Recording::Under(_) | Recording::NotMp4 = recording {
                assert_eq!(
                    parts_sent(&seen, file_id),
                    vec![1, 2, 3],
                    "{what}: each part reached S3 exactly once"
                );
            }
            if matches!(fault, Break::FailedPart) {
                let refused = seen
                    .iter()
                    .filter(|r| r.injected && r.path.contains(file_id.as_str()))
                    .count();
                assert_eq!(refused, MAX_ATTEMPTS as usize, "{what}: part 2 was refused");
            }
        }
    }
    let _ = t.scene.daemon.stop().await;
}

/// A recording served (throttled) by `server` to the process daemon.
fn served(
    server: &DownloadServer,
    account: &str,
    start: ferry_control::model::Timestamp,
    media: &SyntheticMedia,
) -> Meeting {
    let mut meeting = Meeting::lecture(account, "host@example.edu", start)
        .with_files(vec![FileSpec::mp4("speaker_view", 0, 3000, media.len())]);
    meeting.download_base = server.zoom_base();
    let mut behavior = FileBehavior::new(media.clone(), &meeting.download_token);
    behavior.throttle_bytes_per_sec = Some(4 * MIB);
    server.add(&meeting.files[0].id, behavior);
    meeting
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_and_the_note_survive_kill_9_and_a_lease_takeover() {
    const ACCOUNT: &str = "takeover-account";
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("FERRY_OPERATOR_TOKEN", OPERATOR_TOKEN),
        ("FERRY_ZOOM_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("FERRY_TRANSFER_ENABLED", "true"),
        ("FERRY_TRANSFER_PART_SIZE_BYTES", "5242880"),
        ("FERRY_TRANSFER_MAX_CONCURRENT", "6"),
        ("FERRY_TRANSFER_LEASE_SECS", "3"),
        ("FERRY_TRANSFER_HEARTBEAT_SECS", "1"),
        ("FERRY_ZOOM_DOWNLOAD_ALLOWLIST", "127.0.0.1,localhost"),
        ("FERRY_ZOOM_ALLOW_INSECURE_DOWNLOADS", "true"),
    ];
    let server = DownloadServer::start().await.unwrap();
    let daemon = DaemonProcess::spawn(binary(), dir.path(), &env).unwrap();
    let (institution, start) = process_scene(&daemon, ACCOUNT).await;
    let zoom = ferry_zoomsim::ZoomSimulator::new(daemon.http_addr, WEBHOOK_SECRET);

    // Every recording but the faststart one over the cap (skipped at its
    // first chunk, before any kill), and one more over the cap whose stored
    // scan states are erased before the restart.
    let mut cases = Vec::new();
    for (recording, erase_scan_states) in [
        (Recording::Over(Mp4Layout::MoovAtEnd), false),
        (Recording::Under(Mp4Layout::MoovAtEnd), false),
        (Recording::Under(Mp4Layout::FastStart), false),
        (Recording::NotMp4, false),
        (Recording::Over(Mp4Layout::MoovAtEnd), true),
    ] {
        let media = recording.media(20 * MIB);
        let meeting = served(&server, ACCOUNT, start, &media);
        let delivery = zoom.recording_completed(&meeting).await.unwrap();
        let job_id = delivery.job_id().unwrap().to_string();
        cases.push((recording, erase_scan_states, media, meeting, job_id));
    }

    let get = |url: String, job_id: String, key: String| async move {
        let mut admin = connect(&url, Some(&key)).await.unwrap();
        admin
            .jobs
            .get_job(api::GetJobRequest {
                job_id,
                institution_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
    };
    // Until every transfer has at least one part recorded, and none ended.
    for _ in 0..200 {
        let mut all_started = true;
        for (_, _, _, _, job_id) in &cases {
            let job = get(
                daemon.grpc_url(),
                job_id.clone(),
                institution.admin_key.clone(),
            )
            .await;
            assert!(
                matches!(
                    state(&job).0,
                    api::JobState::Queued | api::JobState::Transferring
                ),
                "nothing ends before the kill: {job:?}"
            );
            all_started &= job.bytes_transferred >= PART;
        }
        if all_started {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.kill9().unwrap();
    for (_, _, _, meeting, _) in &cases {
        server.update(&meeting.files[0].id, |b| b.throttle_bytes_per_sec = None);
    }
    // Scan states as a version of Ferry before them left the parts.
    let database = rusqlite::Connection::open(dir.path().join("ferry.db")).unwrap();
    for (_, erase, _, _, job_id) in &cases {
        if *erase {
            let erased = database
                .execute(
                    "UPDATE transfer_parts SET scan_state = NULL WHERE job_id = ?1",
                    [job_id],
                )
                .unwrap();
            assert!(erased >= 1, "the killed transfer had recorded parts");
        }
    }
    drop(database);

    let restarted = DaemonProcess::spawn(binary(), dir.path(), &env).unwrap();
    for (recording, erased, media, meeting, job_id) in &cases {
        let what = format!("{recording:?} (scan states erased: {erased})");
        let mut done = get(
            restarted.grpc_url(),
            job_id.clone(),
            institution.admin_key.clone(),
        )
        .await;
        for _ in 0..600 {
            if !matches!(
                state(&done).0,
                api::JobState::Queued | api::JobState::Transferring
            ) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            done = get(
                restarted.grpc_url(),
                job_id.clone(),
                institution.admin_key.clone(),
            )
            .await;
        }
        match recording {
            Recording::Over(_) => assert_eq!(
                state(&done),
                (api::JobState::Skipped, api::SkipReason::TooLong),
                "{what}: {}",
                done.message
            ),
            _ => {
                assert_eq!(
                    state(&done).0,
                    api::JobState::Completed,
                    "{what}: {}",
                    done.message
                );
                assert_eq!(
                    done.message.contains("not a valid MP4"),
                    *recording == Recording::NotMp4,
                    "{what}: {}",
                    done.message
                );
            }
        }
        // The new process's worker took the expired lease over and resumed
        // (or, without scan states, started over to scan every byte).
        let stats = server.stats(&meeting.files[0].id);
        let last = done.attempts.last().expect("attempts are recorded");
        assert!(done.attempts.len() >= 2, "{what}: {:?}", done.attempts);
        assert_eq!(done.attempt_count as usize, done.attempts.len(), "{what}");
        assert_ne!(
            done.attempts[0].worker_id, last.worker_id,
            "{what}: another worker took over"
        );
        if *erased {
            assert_eq!(stats.range_starts, vec![0, 0], "{what}: {stats:?}");
            assert_eq!(last.resumed_from_bytes, 0, "{what}");
            assert!(
                last.note.contains("started over from byte 0"),
                "{what}: {:?}",
                last.note
            );
        } else {
            let resumed_at = stats.range_starts[1];
            assert!(
                stats.range_starts.len() == 2 && resumed_at >= PART && resumed_at % PART == 0,
                "{what}: resumed at a part boundary: {stats:?}"
            );
            assert_eq!(last.resumed_from_bytes, resumed_at, "{what}");
        }
        let object = object_of(dir.path(), &meeting.files[0].id);
        match (recording, object) {
            (Recording::Over(_), None) => {}
            (Recording::Over(_), Some(path)) => panic!("{what}: an object at {path:?}"),
            (_, Some(path)) => {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    <[u8; 32]>::from(sha2::Sha256::digest(&bytes)) == media.sha256(),
                    "{what}: the object holds the recording's bytes"
                );
            }
            (_, None) => panic!("{what}: no object"),
        }
    }
    let uploads = dir.path().join("media").join(".uploads");
    let left = std::fs::read_dir(&uploads).map_or(0, |d| d.count());
    assert_eq!(left, 0, "no upload left behind");
}

/// The object whose name starts with `file_id` under the data folder's media.
fn object_of(data_dir: &std::path::Path, file_id: &str) -> Option<std::path::PathBuf> {
    let mut stack = vec![data_dir.join("media")];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.file_name().is_some_and(|n| n == ".uploads") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(file_id))
            {
                return Some(p);
            }
        }
    }
    None
}
