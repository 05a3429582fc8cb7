//! The download's body, guarded: each chunk must come within the stall
//! timeout, and the bytes of the whole file (earlier attempts' included)
//! must stay under the size cap whatever Zoom announced. A guard failure
//! says which kind it is: a stall or a broken connection is transient (the
//! attempt keeps what landed and a retry resumes), the cap skips the job.

use std::time::Duration;

use bytes::Bytes;
use ferry_control::rules::Caps;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::caps::size_cap;
use super::error::TransferError;
use crate::metrics::DOWNLOADED_BYTES_TOTAL;

pub struct GuardedBody {
    body: Incoming,
    stall_timeout: Duration,
    caps: Caps,
    announced_size: u64,
    /// The file's bytes before this body's first (kept from earlier attempts).
    start_offset: u64,
    received: u64,
    downloaded: metrics::Counter,
}

impl GuardedBody {
    pub fn new(
        body: Incoming,
        start_offset: u64,
        announced_size: u64,
        caps: Caps,
        stall_timeout: Duration,
    ) -> Self {
        GuardedBody {
            body,
            stall_timeout,
            caps,
            announced_size,
            start_offset,
            received: 0,
            downloaded: metrics::counter!(DOWNLOADED_BYTES_TOTAL),
        }
    }

    /// The next chunk of data, or `None` at the end of the body. Cancel-safe.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, TransferError> {
        loop {
            let frame = match tokio::time::timeout(self.stall_timeout, self.body.frame()).await {
                Err(_) => {
                    return Err(TransferError::transient(format!(
                        "the download stalled: no bytes for {} s",
                        self.stall_timeout.as_secs()
                    )));
                }
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    return Err(TransferError::transient(format!(
                        "the download broke off: {e}"
                    )));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(chunk) = frame.into_data() else {
                continue; // trailers
            };
            self.received += chunk.len() as u64;
            self.downloaded.increment(chunk.len() as u64);
            size_cap(self.position(), self.announced_size, &self.caps)?;
            return Ok(Some(chunk));
        }
    }

    /// Bytes this body delivered.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The file's bytes so far, earlier attempts' included.
    pub fn position(&self) -> u64 {
        self.start_offset + self.received
    }
}
