//! Companion files end to end on the local-folder sink: the simulator lists
//! and serves a lecture's transcript, captions and chat beside its video,
//! the real daemon copies them under the video's key stem once the video is
//! in, and the job and the media say where each stands. A missing, failing
//! or refused companion never touches the video; `RetryJob` fetches just the
//! missing one; a late `recording.transcript_completed` is attached once,
//! whatever its redeliveries.

use std::path::Path;
use std::time::Duration;

use ferry_control::api;
use ferry_zoomsim::downloads::{FileBehavior, LengthHeader};
use ferry_zoomsim::{FileSpec, Meeting, Mp4Layout, SyntheticMedia};
use tonic::Code;

use crate::support::*;
use crate::transfer::{Transfers, sha256_file, state, transfers};

/// A lecture whose MP4 and `companions` (each a `FileSpec` and what it
/// serves; `None` is listed by Zoom but not served) come from `t.server`.
fn lecture_with(
    t: &Transfers,
    video: &SyntheticMedia,
    companions: Vec<(FileSpec, Option<SyntheticMedia>, LengthHeader)>,
) -> Meeting {
    let mp4 = FileSpec::mp4("shared_screen_with_speaker_view", 0, 3600, video.len());
    let mut files = vec![mp4];
    files.extend(companions.iter().map(|(spec, media, _)| FileSpec {
        file_size: media.as_ref().map_or(spec.file_size, SyntheticMedia::len),
        ..spec.clone()
    }));
    let mut meeting = t.scene.lecture(60).with_files(files);
    meeting.download_base = t.server.zoom_base();
    t.server.add(
        &meeting.files[0].id,
        FileBehavior::new(video.clone(), &meeting.download_token),
    );
    for (spec, media, length) in companions {
        if let Some(media) = media {
            let mut behavior = FileBehavior::new(media, &meeting.download_token);
            behavior.length_header = length;
            t.server.add(&spec.id, behavior);
        }
    }
    meeting
}

fn video() -> SyntheticMedia {
    SyntheticMedia::mp4(
        6 * MIB + 321,
        Duration::from_secs(1800),
        Mp4Layout::FastStart,
        0,
    )
}

fn kind(c: &api::CompanionStatus) -> api::CompanionKind {
    api::CompanionKind::try_from(c.kind).unwrap()
}

fn companion_state(c: &api::CompanionStatus) -> api::CompanionState {
    api::CompanionState::try_from(c.state).unwrap()
}

/// Waits (up to 30 s) until the job lists `count` companions and none is
/// pending; returns the job.
async fn wait_companions(t: &mut Transfers, job_id: &str, count: usize) -> api::Job {
    for _ in 0..300 {
        let job = t.scene.job(job_id).await;
        if job.companions.len() == count
            && job
                .companions
                .iter()
                .all(|c| companion_state(c) != api::CompanionState::Pending)
        {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job = t.scene.job(job_id).await;
    panic!(
        "job {job_id}'s companions did not settle: {:?}",
        job.companions
    );
}

async fn media_of(t: &mut Transfers, media_id: &str) -> api::Media {
    t.scene
        .admin
        .media
        .get_media(api::GetMediaRequest {
            media_id: media_id.into(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn stem(key: &str) -> &str {
    key.rsplit_once('.').unwrap().0
}

fn landed(media_dir: &Path, key: &str) -> [u8; 32] {
    sha256_file(&media_dir.join(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn companions_land_byte_for_byte_beside_the_video_and_on_the_media() {
    let mut t = transfers(|_| {}).await;
    let video = video();
    let transcript = SyntheticMedia::vtt(400);
    let captions = SyntheticMedia::vtt(250);
    let chat = SyntheticMedia::text(
        "10:00:04 From Élisa to Everyone: bonjour ✓\n10:01:10 From Sam to Everyone: hi\n",
    );
    let meeting = lecture_with(
        &t,
        &video,
        vec![
            (
                FileSpec::transcript(0, 3600),
                Some(transcript.clone()),
                LengthHeader::Exact,
            ),
            (
                FileSpec::captions(0, 3600),
                Some(captions.clone()),
                LengthHeader::Exact,
            ),
            (FileSpec::chat(0), Some(chat.clone()), LengthHeader::Absent),
        ],
    );
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    let done = wait_companions(&mut t, &job.job_id, 3).await;
    let kinds: Vec<_> = done
        .companions
        .iter()
        .map(|c| (kind(c), companion_state(c)))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (api::CompanionKind::Transcript, api::CompanionState::Copied),
            (
                api::CompanionKind::ClosedCaptions,
                api::CompanionState::Copied
            ),
            (api::CompanionKind::Chat, api::CompanionState::Copied),
        ],
        "{:?}",
        done.companions
    );

    let media = media_of(&mut t, &done.media_id).await;
    assert_eq!(media.size_bytes, video.len(), "the video is untouched");
    assert_eq!(landed(&t.media_dir, &media.object_key), video.sha256());
    let files: Vec<_> = media
        .companions
        .iter()
        .map(|c| (api::CompanionKind::try_from(c.kind).unwrap(), c))
        .collect();
    assert_eq!(files.len(), 3, "{:?}", media.companions);
    for ((kind, file), (expected_kind, served, suffix)) in files.iter().zip([
        (
            api::CompanionKind::Transcript,
            &transcript,
            "transcript.vtt",
        ),
        (api::CompanionKind::ClosedCaptions, &captions, "cc.vtt"),
        (api::CompanionKind::Chat, &chat, "chat.txt"),
    ]) {
        assert_eq!(*kind, expected_kind);
        assert_eq!(
            file.object_key,
            format!("{}.{suffix}", stem(&media.object_key)),
            "beside the video, under its key stem"
        );
        assert_eq!(file.size_bytes, served.len());
        assert!(file.checksum.starts_with("crc32c:"), "{}", file.checksum);
        assert_eq!(
            landed(&t.media_dir, &file.object_key),
            served.sha256(),
            "{suffix} byte for byte"
        );
    }
    assert_eq!(t.objects().len(), 4, "{:?}", t.objects());
    assert_eq!(t.unfinished_uploads(), 0);
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_refused_companions_leave_the_video_completed_and_a_retry_fetches_only_the_missing_one()
 {
    let mut t = transfers(|c| c.companions.max_bytes = 64 * 1024).await;
    let video = video();
    // Larger than the cap, though Zoom announces 5000 bytes and the answer
    // has no Content-Length: refused mid-stream.
    let huge_transcript = SyntheticMedia::vtt(3000);
    assert!(huge_transcript.len() > 64 * 1024);
    // Captions that are a video, not text.
    let binary_captions = SyntheticMedia::mp4(
        SyntheticMedia::mp4_min_len(0) + 4096,
        Duration::from_secs(1),
        Mp4Layout::FastStart,
        0,
    );
    let chat = SyntheticMedia::text("10:00:04 From Élisa to Everyone: the slides are up\n");
    let chat_spec = FileSpec::chat(0);
    let mut meeting = lecture_with(
        &t,
        &video,
        vec![
            (
                FileSpec::transcript(0, 3600),
                Some(huge_transcript),
                LengthHeader::Absent,
            ),
            (
                FileSpec::captions(0, 3600),
                Some(binary_captions),
                LengthHeader::Exact,
            ),
            // Listed by Zoom, not served (404).
            (
                FileSpec {
                    file_size: chat.len(),
                    ..chat_spec.clone()
                },
                None,
                LengthHeader::Exact,
            ),
        ],
    );
    // Zoom announces 5000 bytes for the transcript: a lie.
    meeting.files[1].file_size = 5000;
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    let media = media_of(&mut t, &done.media_id).await;
    assert_eq!(landed(&t.media_dir, &media.object_key), video.sha256());

    let settled = wait_companions(&mut t, &job.job_id, 3).await;
    let by_kind = |k| {
        settled
            .companions
            .iter()
            .find(|c| kind(c) == k)
            .cloned()
            .unwrap()
    };
    let transcript = by_kind(api::CompanionKind::Transcript);
    assert_eq!(companion_state(&transcript), api::CompanionState::Refused);
    assert!(
        transcript.reason.contains("65536-byte companion cap")
            && transcript.reason.contains("5000"),
        "{}",
        transcript.reason
    );
    let captions = by_kind(api::CompanionKind::ClosedCaptions);
    assert_eq!(companion_state(&captions), api::CompanionState::Refused);
    assert!(
        captions.reason.contains("not a WebVTT text file"),
        "{}",
        captions.reason
    );
    let missing = by_kind(api::CompanionKind::Chat);
    assert_eq!(companion_state(&missing), api::CompanionState::Missing);
    assert!(missing.reason.contains("HTTP 404"), "{}", missing.reason);
    assert_eq!(
        state(&settled).0,
        api::JobState::Completed,
        "the video stays completed"
    );
    assert!(
        media_of(&mut t, &done.media_id).await.companions.is_empty(),
        "nothing refused or missing is listed on the media"
    );
    assert_eq!(
        t.objects().len(),
        1,
        "only the video landed: {:?}",
        t.objects()
    );
    assert_eq!(t.unfinished_uploads(), 0, "refused uploads were aborted");
    let served_before = (
        t.server.stats(&meeting.files[1].id).content_requests,
        t.server.stats(&meeting.files[2].id).content_requests,
    );

    // Zoom has the chat now: a retry of the completed job fetches just it.
    t.server.add(
        &chat_spec.id,
        FileBehavior::new(chat.clone(), &meeting.download_token),
    );
    let retried = t
        .scene
        .admin
        .jobs
        .retry_job(api::RetryJobRequest {
            job_id: job.job_id.clone(),
            institution_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&retried).0, api::JobState::Completed);
    let chat_state = retried
        .companions
        .iter()
        .find(|c| kind(c) == api::CompanionKind::Chat)
        .map(companion_state);
    assert_eq!(chat_state, Some(api::CompanionState::Pending));
    let after = wait_companions(&mut t, &job.job_id, 3).await;
    let states: Vec<_> = after
        .companions
        .iter()
        .map(|c| (kind(c), companion_state(c)))
        .collect();
    assert_eq!(
        states,
        vec![
            (api::CompanionKind::Transcript, api::CompanionState::Refused),
            (
                api::CompanionKind::ClosedCaptions,
                api::CompanionState::Refused
            ),
            (api::CompanionKind::Chat, api::CompanionState::Copied),
        ]
    );
    assert_eq!(
        (
            t.server.stats(&meeting.files[1].id).content_requests,
            t.server.stats(&meeting.files[2].id).content_requests,
        ),
        served_before,
        "the refused companions were not fetched again"
    );
    assert_eq!(t.server.stats(&chat_spec.id).content_requests, 1);
    let media = media_of(&mut t, &done.media_id).await;
    assert_eq!(media.companions.len(), 1);
    assert_eq!(
        landed(&t.media_dir, &media.companions[0].object_key),
        chat.sha256()
    );
    assert_status(
        t.scene
            .admin
            .jobs
            .retry_job(api::RetryJobRequest {
                job_id: job.job_id.clone(),
                institution_id: String::new(),
            })
            .await,
        Code::FailedPrecondition,
        "none of its companion files is missing or failed",
    );
    let _ = t.scene.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_transcript_is_attached_once_across_redeliveries() {
    let mut t = transfers(|_| {}).await;
    let video = video();
    let meeting = lecture_with(&t, &video, Vec::new());
    let job = t.scene.ingest(&meeting).await;
    let done = t.wait_final(&job.job_id).await;
    assert_eq!(state(&done).0, api::JobState::Completed, "{}", done.message);
    assert!(t.scene.job(&job.job_id).await.companions.is_empty());

    // Zoom finishes the audio transcript later, with a token of its own.
    let transcript = SyntheticMedia::vtt(120);
    let spec = FileSpec {
        file_size: transcript.len(),
        ..FileSpec::transcript(0, 3600)
    };
    let late_token = "eyJ0eXAiOiJKV1Qi.late-transcript";
    t.server
        .add(&spec.id, FileBehavior::new(transcript.clone(), late_token));
    let first = t
        .scene
        .zoom
        .transcript_completed(&meeting, &spec, late_token)
        .await
        .unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["attached"], true, "{first:?}");
    assert_eq!(first.job_id(), Some(job.job_id.as_str()));
    let again = t
        .scene
        .zoom
        .transcript_completed(&meeting, &spec, late_token)
        .await
        .unwrap();
    assert_eq!(
        again.body["attached"], false,
        "a redelivery attaches nothing: {again:?}"
    );

    let settled = wait_companions(&mut t, &job.job_id, 1).await;
    assert_eq!(
        companion_state(&settled.companions[0]),
        api::CompanionState::Copied
    );
    assert_eq!(kind(&settled.companions[0]), api::CompanionKind::Transcript);
    let media = media_of(&mut t, &done.media_id).await;
    assert_eq!(media.companions.len(), 1);
    assert_eq!(
        landed(&t.media_dir, &media.companions[0].object_key),
        transcript.sha256()
    );
    assert_eq!(t.server.stats(&spec.id).content_requests, 1);

    // Redelivered once more after the copy: still one transcript, copied.
    let late = t
        .scene
        .zoom
        .transcript_completed(&meeting, &spec, late_token)
        .await
        .unwrap();
    assert_eq!(late.body["attached"], false, "{late:?}");
    let job_now = t.scene.job(&job.job_id).await;
    assert_eq!(job_now.companions.len(), 1);
    assert_eq!(
        companion_state(&job_now.companions[0]),
        api::CompanionState::Copied
    );
    assert_eq!(media_of(&mut t, &done.media_id).await.companions.len(), 1);
    assert_eq!(t.objects().len(), 2, "{:?}", t.objects());
    let _ = t.scene.daemon.stop().await;
}
