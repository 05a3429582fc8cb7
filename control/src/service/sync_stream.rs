//! How every directory sync stream is read (`SyncUsers`, `SyncSections`):
//! a header first and only first, then one record per message, at most
//! `max_sync_records` of them, each validated on its own (an invalid record
//! is rejected alone, with its reason), and nothing applied until the whole
//! stream has arrived, so that a stream that breaks off half way changes
//! nothing. An empty FULL sync is refused: it would deactivate everything,
//! far more likely a broken export than an intent.

use futures::StreamExt;
use tonic::Status;

use crate::api;
use crate::model::SyncMode;

/// What one message of a sync stream holds.
pub(super) enum SyncItem<H, R> {
    Header(H),
    Record(R),
    Empty,
}

/// A sync stream's message type.
pub(super) trait SyncMessage {
    type Header;
    type Record;
    /// The header message's name, for errors (`SyncUsersHeader`).
    const HEADER: &'static str;
    /// The record field's name, for errors (`user`).
    const RECORD: &'static str;
    fn into_item(self) -> SyncItem<Self::Header, Self::Record>;
}

impl SyncMessage for api::SyncUsersRequest {
    type Header = api::SyncUsersHeader;
    type Record = api::UserRecord;
    const HEADER: &'static str = "SyncUsersHeader";
    const RECORD: &'static str = "user";
    fn into_item(self) -> SyncItem<Self::Header, Self::Record> {
        use api::sync_users_request::Item;
        match self.item {
            Some(Item::Header(header)) => SyncItem::Header(header),
            Some(Item::User(record)) => SyncItem::Record(record),
            None => SyncItem::Empty,
        }
    }
}

impl SyncMessage for api::SyncSectionsRequest {
    type Header = api::SyncSectionsHeader;
    type Record = api::SectionRecord;
    const HEADER: &'static str = "SyncSectionsHeader";
    const RECORD: &'static str = "section";
    fn into_item(self) -> SyncItem<Self::Header, Self::Record> {
        use api::sync_sections_request::Item;
        match self.item {
            Some(Item::Header(header)) => SyncItem::Header(header),
            Some(Item::Section(record)) => SyncItem::Record(record),
            None => SyncItem::Empty,
        }
    }
}

/// The stream's first message, which must be its header.
pub(super) async fn read_header<S, M>(stream: &mut S) -> Result<M::Header, Status>
where
    S: futures::Stream<Item = Result<M, Status>> + Unpin,
    M: SyncMessage,
{
    match stream.next().await {
        Some(Ok(message)) => match message.into_item() {
            SyncItem::Header(header) => Ok(header),
            _ => Err(Status::invalid_argument(format!(
                "header: the first message of the stream must be a {}",
                M::HEADER
            ))),
        },
        Some(Err(status)) => Err(status),
        None => Err(Status::invalid_argument("header: the stream is empty")),
    }
}

/// The records a sync received, checked one by one.
pub(super) struct SyncRecords<V, J> {
    pub received: u32,
    pub valid: Vec<V>,
    pub rejected: Vec<J>,
}

/// Reads every record after the header, `check`ing each with its
/// zero-based index: `Ok` is a valid record, `Err` its rejection.
pub(super) async fn read_records<S, M, V, J>(
    stream: &mut S,
    max_records: usize,
    mode: SyncMode,
    mut check: impl FnMut(u32, M::Record) -> Result<V, J>,
) -> Result<SyncRecords<V, J>, Status>
where
    S: futures::Stream<Item = Result<M, Status>> + Unpin,
    M: SyncMessage,
{
    let mut records = SyncRecords {
        received: 0,
        valid: Vec::new(),
        rejected: Vec::new(),
    };
    while let Some(message) = stream.next().await {
        let number = records.received + 1;
        let record = match message?.into_item() {
            SyncItem::Record(record) => record,
            SyncItem::Header(_) => {
                return Err(Status::invalid_argument(format!(
                    "header: only the first message may be a header (message {number} is one too)"
                )));
            }
            SyncItem::Empty => {
                return Err(Status::invalid_argument(format!(
                    "item: message {number} is empty"
                )));
            }
        };
        if records.received as usize >= max_records {
            return Err(Status::invalid_argument(format!(
                "{}: more than {max_records} records in one sync; split it into UPSERT syncs",
                M::RECORD
            )));
        }
        match check(records.received, record) {
            Ok(valid) => records.valid.push(valid),
            Err(rejected) => records.rejected.push(rejected),
        }
        records.received += 1;
    }
    if mode == SyncMode::Full && records.received == 0 {
        return Err(Status::invalid_argument(format!(
            "{0}: a FULL sync needs at least one record (it would deactivate every {0})",
            M::RECORD
        )));
    }
    Ok(records)
}
