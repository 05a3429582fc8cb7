//! The simulator's trash: `DELETE /v2/meetings/{uuid}/recordings?action=trash`
//! on the "Zoom" host, as Zoom answers it (204 when it moved the meeting's
//! recordings, 404 code 3301 for a meeting it does not have or already
//! trashed, the uuid decoded once or twice as on the download-token call),
//! with a record of every meeting it trashed so that a test can assert what
//! was trashed and that nothing else was. A test can make the next calls
//! fail with a status of its choosing (a 5xx, a 429).

use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::downloads::{Api, Body, bearer_account, decode_meeting, json};

/// One meeting moved to the trash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrashedMeeting {
    pub account_id: String,
    pub meeting_uuid: String,
    pub at: Instant,
}

/// What the trash endpoint holds and saw.
#[derive(Default)]
pub(crate) struct TrashState {
    pub(crate) trashed: Vec<TrashedMeeting>,
    /// Statuses the next calls answer with, first first, before anything
    /// else is looked at.
    pub(crate) fail_next: Vec<u16>,
    /// Every call that reached the endpoint, answered however.
    pub(crate) calls: u32,
}

impl TrashState {
    pub(crate) fn is_trashed(&self, uuid: &str) -> bool {
        self.trashed.iter().any(|t| t.meeting_uuid == uuid)
    }
}

/// `DELETE /v2/meetings/{uuid}/recordings?action=trash`.
pub(crate) fn trash_recordings(api: &Api, request: Request<Incoming>) -> Response<Body> {
    let mut api = api.lock().expect("api lock");
    api.trash.calls += 1;
    if !api.trash.fail_next.is_empty() {
        let status = api.trash.fail_next.remove(0);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return json(
            status,
            serde_json::json!({"code": status.as_u16(), "message": "simulated failure"}),
        );
    }
    let Some(account) = bearer_account(&api, &request) else {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({"code": 124, "message": "Invalid access token."}),
        );
    };
    let action = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("action=")));
    if action != Some("trash") {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": 300, "message": "the simulator only trashes (action=trash)"}),
        );
    }
    let uuid = request
        .uri()
        .path()
        .strip_prefix("/v2/meetings/")
        .and_then(|rest| rest.strip_suffix("/recordings"))
        .and_then(decode_meeting)
        .filter(|uuid| api.meeting_owner(uuid) == Some(account.as_str()))
        .filter(|uuid| !api.trash.is_trashed(uuid));
    let Some(uuid) = uuid else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"code": 3301, "message": "This recording does not exist."}),
        );
    };
    api.trash.trashed.push(TrashedMeeting {
        account_id: account,
        meeting_uuid: uuid,
        at: Instant::now(),
    });
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(super::downloads::text_body(""))
        .expect("a bare 204")
}
