//! The local-folder sink, the embedded default. An upload is one temporary
//! file that parts are written into at their offsets (no second copy), plus
//! a small record per part; completing fsyncs the file and renames it into
//! place atomically, so a reader sees the whole object or none of it.

use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;

use super::{CompletedPart, ObjectSink, PendingUpload, SinkError, UploadedPart};
use crate::transfer::parts::Part;

pub struct LocalSink {
    root: PathBuf,
}

impl LocalSink {
    /// Objects live under `root`; unfinished uploads under `root/.uploads`.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join(".uploads"))?;
        Ok(LocalSink { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn object_path(&self, key: &str) -> Result<PathBuf, SinkError> {
        let relative = Path::new(key);
        let safe = !key.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(part) if part != ".uploads"));
        if !safe {
            return Err(SinkError::Permanent(format!(
                "object key {key:?} is not a safe relative path"
            )));
        }
        Ok(self.root.join(relative))
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf, SinkError> {
        if upload_id.is_empty()
            || !upload_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(SinkError::NoSuchUpload(upload_id.to_string()));
        }
        Ok(self.root.join(".uploads").join(upload_id))
    }
}

fn io_error(what: &str, error: std::io::Error) -> SinkError {
    SinkError::transient(format!("{what}: {error}"))
}

async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, SinkError> + Send + 'static,
) -> Result<T, SinkError> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| SinkError::transient(format!("local sink task failed: {e}")))?
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

#[async_trait]
impl ObjectSink for LocalSink {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn create_upload(&self, key: &str, _content_type: &str) -> Result<String, SinkError> {
        self.object_path(key)?;
        let upload_id = uuid_like();
        let dir = self.upload_dir(&upload_id)?;
        let key = key.to_string();
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| io_error("create upload directory", e))?;
            std::fs::write(dir.join("key"), key.as_bytes())
                .map_err(|e| io_error("write upload key", e))?;
            std::fs::File::create(dir.join("data"))
                .map_err(|e| io_error("create upload file", e))?;
            Ok(())
        })
        .await?;
        Ok(upload_id)
    }

    async fn upload_part(
        &self,
        _key: &str,
        upload_id: &str,
        part: &Part,
    ) -> Result<String, SinkError> {
        let dir = self.upload_dir(upload_id)?;
        let part = part.clone();
        blocking(move || {
            if !dir.exists() {
                return Err(SinkError::NoSuchUpload(dir.display().to_string()));
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("data"))
                .map_err(|e| io_error("open upload file", e))?;
            let mut offset = part.offset;
            for chunk in part.chunks.iter() {
                file.write_all_at(chunk, offset)
                    .map_err(|e| io_error("write part", e))?;
                offset += chunk.len() as u64;
            }
            file.sync_data().map_err(|e| io_error("sync part", e))?;
            let etag = format!("{:08x}-{}", part.crc32c, part.len);
            // The part's record is written last: a part is listed only once
            // its bytes are durable.
            let record = format!("{}\n{}\n{}\n", etag, part.offset, part.len);
            let temporary = dir.join(format!("part-{:05}.tmp", part.number));
            std::fs::write(&temporary, record).map_err(|e| io_error("write part record", e))?;
            std::fs::rename(&temporary, dir.join(format!("part-{:05}", part.number)))
                .map_err(|e| io_error("commit part record", e))?;
            Ok(etag)
        })
        .await
    }

    async fn list_parts(
        &self,
        _key: &str,
        upload_id: &str,
    ) -> Result<Vec<UploadedPart>, SinkError> {
        let dir = self.upload_dir(upload_id)?;
        let upload_id = upload_id.to_string();
        blocking(move || {
            let entries =
                std::fs::read_dir(&dir).map_err(|_| SinkError::NoSuchUpload(upload_id))?;
            let mut parts = Vec::new();
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Some(number) = name
                    .strip_prefix("part-")
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let record = std::fs::read_to_string(entry.path())
                    .map_err(|e| io_error("read part record", e))?;
                let mut lines = record.lines();
                let (Some(etag), Some(_offset), Some(len)) =
                    (lines.next(), lines.next(), lines.next())
                else {
                    continue;
                };
                parts.push(UploadedPart {
                    part_number: number,
                    etag: etag.to_string(),
                    size: len.parse().unwrap_or(0),
                });
            }
            parts.sort_by_key(|p| p.part_number);
            Ok(parts)
        })
        .await
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), SinkError> {
        let target = self.object_path(key)?;
        let dir = self.upload_dir(upload_id)?;
        let held = self.list_parts(key, upload_id).await?;
        for (i, part) in parts.iter().enumerate() {
            let matches = held
                .iter()
                .any(|h| h.part_number == part.part_number && h.etag == part.etag);
            if !matches || part.part_number != i as u32 + 1 {
                return Err(SinkError::Permanent(format!(
                    "part {} is not held as listed; refusing to complete",
                    part.part_number
                )));
            }
        }
        let expected_len: u64 = held
            .iter()
            .filter(|h| parts.iter().any(|p| p.part_number == h.part_number))
            .map(|h| h.size)
            .sum();
        blocking(move || {
            let data = dir.join("data");
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&data)
                .map_err(|e| io_error("open upload file", e))?;
            file.set_len(expected_len)
                .map_err(|e| io_error("trim upload file", e))?;
            file.sync_all()
                .map_err(|e| io_error("sync upload file", e))?;
            drop(file);
            let parent = target
                .parent()
                .expect("object paths have a parent")
                .to_path_buf();
            std::fs::create_dir_all(&parent).map_err(|e| io_error("create object directory", e))?;
            std::fs::rename(&data, &target).map_err(|e| io_error("move object into place", e))?;
            sync_dir(&parent).map_err(|e| io_error("sync object directory", e))?;
            std::fs::remove_dir_all(&dir).map_err(|e| io_error("remove upload directory", e))?;
            Ok(())
        })
        .await
    }

    async fn abort_upload(&self, _key: &str, upload_id: &str) -> Result<(), SinkError> {
        let Ok(dir) = self.upload_dir(upload_id) else {
            return Ok(());
        };
        blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove upload directory", e)),
        })
        .await
    }

    async fn list_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, SinkError> {
        let uploads = self.root.join(".uploads");
        let prefix = prefix.to_string();
        blocking(move || {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&uploads)
                .map_err(|e| io_error("list uploads", e))?
                .flatten()
            {
                let upload_id = entry.file_name().to_string_lossy().to_string();
                let key_file = entry.path().join("key");
                if let Ok(key) = std::fs::read_to_string(&key_file)
                    && key.starts_with(&prefix)
                {
                    // The key file is written once, when the upload starts.
                    let initiated = std::fs::metadata(&key_file).and_then(|m| m.modified()).ok();
                    found.push(PendingUpload {
                        key,
                        upload_id,
                        initiated,
                    });
                }
            }
            Ok(found)
        })
        .await
    }

    async fn object_size(&self, key: &str) -> Result<Option<u64>, SinkError> {
        let path = self.object_path(key)?;
        blocking(move || match std::fs::metadata(&path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("stat object", e)),
        })
        .await
    }
}

fn uuid_like() -> String {
    use rand::RngCore;
    let mut bits = [0u8; 16];
    rand::rng().fill_bytes(&mut bits);
    hex::encode(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::sink::conformance;

    #[tokio::test]
    async fn local_sink_passes_the_sink_suite() {
        let root = tempfile::tempdir().unwrap();
        let sink = LocalSink::new(root.path()).unwrap();
        let read_object = |key: &str| std::fs::read(root.path().join(key)).ok();
        conformance::run_all(&sink, &read_object).await;
    }
}
