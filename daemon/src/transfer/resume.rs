//! Where an attempt starts: the job's stored multipart upload reconciled
//! with what the sink really holds, and the MP4 scanner as it stood after
//! the parts that are kept.
//!
//! Only the leading run of parts that the store and the sink agree on is
//! kept (the download resumes after it); parts after a gap that the sink
//! also holds are remembered so that they are not sent again. A resume must
//! never keep a part whose scan state it cannot restore: then the upload
//! starts over from byte 0, so that no file is completed on a scan that
//! missed bytes.

use ferry_control::model::{Job, PartRecord, UploadRecord, UploadState};

use super::context::Context;
use super::error::{Stage, TransferError, lease_or_store};
use super::mp4::Mp4Scanner;
use super::parts::part_size_for;
use super::sink::SinkError;

/// The upload an attempt writes to, and the parts already in it.
pub struct Resume {
    pub upload: UploadRecord,
    /// The leading run of parts the store and the sink agree on.
    pub parts: Vec<PartRecord>,
    /// Parts after a gap that the sink also holds: a resumed stream that cuts
    /// the same part again records it without sending it a second time.
    pub landed_later: Vec<PartRecord>,
}

impl Resume {
    fn fresh(upload: UploadRecord) -> Self {
        Resume {
            upload,
            parts: Vec::new(),
            landed_later: Vec::new(),
        }
    }

    /// The first byte the download must fetch.
    pub fn offset(&self) -> u64 {
        self.parts.iter().map(|p| p.len).sum()
    }

    /// The MP4 scanner as it stood after the kept parts, or why it cannot
    /// be had (then the file must be scanned again from byte 0).
    pub fn scanner(&self) -> Result<Mp4Scanner, String> {
        let Some(last) = self.parts.last() else {
            return Ok(Mp4Scanner::new());
        };
        let stored = last.scan_state.as_deref().ok_or_else(|| {
            "the kept parts were recorded by a version of Ferry that stored no MP4 scan state"
                .to_string()
        })?;
        let scanner = Mp4Scanner::restore(stored).map_err(|e| e.to_string())?;
        if scanner.bytes_seen() != self.offset() {
            return Err(format!(
                "the stored MP4 scan state covers {} bytes, not the {} bytes of the kept parts",
                scanner.bytes_seen(),
                self.offset()
            ));
        }
        Ok(scanner)
    }
}

/// Where an attempt starts.
pub enum Start {
    /// Stream from `resume.offset()`, the scanner restored to that point.
    Resume {
        resume: Resume,
        scanner: Mp4Scanner,
        /// Why it starts where it does, when that is not the obvious.
        note: String,
    },
    /// An earlier attempt completed the upload but never heard back: only
    /// the media record is missing. The scanner saw the whole file.
    AlreadyComplete { done: Resume, scanner: Mp4Scanner },
}

impl Start {
    pub fn offset(&self) -> u64 {
        match self {
            Start::Resume { resume, .. } => resume.offset(),
            Start::AlreadyComplete { done, .. } => done.offset(),
        }
    }

    pub fn note(&self) -> String {
        match self {
            Start::Resume { note, .. } => note.clone(),
            Start::AlreadyComplete { .. } => {
                "the upload was completed by an earlier attempt whose answer was lost".into()
            }
        }
    }
}

/// The stored upload of `key`, reconciled with the sink; a new upload when
/// there is none, when it is another key's, or when the kept parts' scan
/// cannot be restored.
pub async fn reconcile(
    context: &Context,
    job: &Job,
    key: &str,
    content_type: &str,
) -> Result<Start, TransferError> {
    let kept = match kept_parts(context, job, key, content_type).await? {
        Kept::Upload(resume) => resume,
        Kept::Complete(done) => match done.scanner() {
            Ok(scanner) => return Ok(Start::AlreadyComplete { done, scanner }),
            Err(why) => return start_over_to_scan(context, job, key, content_type, why).await,
        },
    };
    match kept.scanner() {
        Ok(scanner) => Ok(Start::Resume {
            resume: kept,
            scanner,
            note: String::new(),
        }),
        Err(why) => start_over_to_scan(context, job, key, content_type, why).await,
    }
}

/// Never complete a file whose scan did not see every byte: scan it again
/// from the start rather than trust the kept parts.
async fn start_over_to_scan(
    context: &Context,
    job: &Job,
    key: &str,
    content_type: &str,
    why: String,
) -> Result<Start, TransferError> {
    tracing::warn!(job = %job.job_id, reason = %why, "starting the upload over to scan the whole file");
    Ok(Start::Resume {
        resume: start_over(context, job, key, content_type).await?,
        scanner: Mp4Scanner::new(),
        note: format!("started over from byte 0 to scan the whole file: {why}"),
    })
}

/// What the store and the sink still have of the job's upload.
enum Kept {
    Upload(Resume),
    Complete(Resume),
}

async fn kept_parts(
    context: &Context,
    job: &Job,
    key: &str,
    content_type: &str,
) -> Result<Kept, TransferError> {
    let stored = context
        .store
        .upload_state(&job.job_id)
        .await
        .map_err(lease_or_store)?;
    let Some(stored) = stored.filter(|s| s.upload.object_key == key) else {
        return start_over(context, job, key, content_type)
            .await
            .map(Kept::Upload);
    };
    let held = match context.sink.list_parts(key, &stored.upload.upload_id).await {
        Ok(held) => held,
        Err(SinkError::NoSuchUpload(_)) => {
            if let Some(done) = completed_earlier(context, job, key, &stored).await? {
                return Ok(Kept::Complete(done));
            }
            return start_over(context, job, key, content_type)
                .await
                .map(Kept::Upload);
        }
        Err(e) => return Err(e.into()),
    };
    let in_sink = |part: &PartRecord| {
        held.iter()
            .any(|h| h.part_number == part.part_number && h.etag == part.etag && h.size == part.len)
    };
    let (mut parts, mut landed_later) = (Vec::new(), Vec::new());
    let mut contiguous = true;
    for part in stored.parts {
        let held_too = in_sink(&part);
        contiguous = contiguous && held_too && part.part_number == parts.len() as u32 + 1;
        if contiguous {
            parts.push(part);
        } else if held_too {
            landed_later.push(part);
        }
    }
    Ok(Kept::Upload(Resume {
        upload: stored.upload,
        parts,
        landed_later,
    }))
}

/// Aborts any earlier upload of the job and starts a new one from byte 0.
pub async fn start_over(
    context: &Context,
    job: &Job,
    key: &str,
    content_type: &str,
) -> Result<Resume, TransferError> {
    if let Ok(Some(old)) = context.store.upload_state(&job.job_id).await {
        let _ = context
            .sink
            .abort_upload(&old.upload.object_key, &old.upload.upload_id)
            .await;
    }
    let upload_id = context.sink.create_upload(key, content_type).await?;
    let file_size = job.recording_file.as_ref().map_or(0, |f| f.file_size);
    let upload = UploadRecord {
        upload_id,
        object_key: key.to_string(),
        part_size: part_size_for(file_size, context.settings.part_size),
    };
    if let Err(e) = context
        .store
        .start_upload(context.holder(&job.job_id), upload.clone())
        .await
    {
        let _ = context.sink.abort_upload(key, &upload.upload_id).await;
        return Err(lease_or_store(e));
    }
    Ok(Resume::fresh(upload))
}

/// The upload is gone from the sink: if the object is there, made of exactly
/// the parts recorded (which cover the whole file), the last attempt's
/// CompleteMultipartUpload succeeded and only its answer was lost.
async fn completed_earlier(
    context: &Context,
    job: &Job,
    key: &str,
    stored: &UploadState,
) -> Result<Option<Resume>, TransferError> {
    let contiguous = stored
        .parts
        .iter()
        .enumerate()
        .all(|(i, p)| p.part_number == i as u32 + 1);
    let recorded: u64 = stored.parts.iter().map(|p| p.len).sum();
    let announced = job.recording_file.as_ref().map_or(0, |f| f.file_size);
    if !contiguous || recorded == 0 || (announced > 0 && recorded != announced) {
        return Ok(None);
    }
    match context.sink.object_size(key).await {
        Ok(Some(size)) if size == recorded => Ok(Some(Resume {
            upload: stored.upload.clone(),
            parts: stored.parts.clone(),
            landed_later: Vec::new(),
        })),
        Ok(_) => Ok(None),
        Err(e) => Err(TransferError::from(e).at(Stage::StartUpload)),
    }
}
