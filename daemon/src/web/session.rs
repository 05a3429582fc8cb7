//! Console sessions and the pages' CSRF tokens. Signing in turns an admin
//! key (or the operator token with an institution) into a server-side
//! session: a random id in an HttpOnly, SameSite=Strict cookie (Secure
//! under TLS) names a ticket in the store whose sealed payload holds the
//! credential, so replicas sharing the store share sessions and the key
//! never travels in a cookie. A session ends when unused for
//! `session_idle`, `session_max` after sign-in, at sign-out, or as soon as
//! its key is revoked (every page call re-authenticates it). Sign-in
//! attempts are rate-limited per client address.

use std::net::IpAddr;
use std::num::NonZeroU32;

use ferry_control::model::Timestamp;
use ferry_control::secrets::{Secret, TokenHash};
use ferry_control::service::Principal;
use ferry_control::store::{Ticket, TicketKind};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{Web, WebRequest, WebResponse, redirect, views};
use crate::marketplace::random_url_token;

pub(crate) const SESSION_COOKIE: &str = "ferry_session";
const SIGN_IN_COOKIE: &str = "ferry_sign_in";

pub(crate) type SignInLimiter = DefaultKeyedRateLimiter<IpAddr>;

pub(crate) fn sign_in_limiter(per_minute: u32) -> SignInLimiter {
    RateLimiter::keyed(Quota::per_minute(
        NonZeroU32::new(per_minute.max(1)).expect("at least one"),
    ))
}

/// Seals a ticket's payload.
pub(crate) fn seal_json<T: Serialize>(web: &Web, value: &T) -> ferry_control::secrets::Sealed {
    web.secret_box
        .seal(&serde_json::to_vec(value).expect("ticket payloads serialise"))
}

/// Opens a ticket's payload; None when it does not open or parse.
pub(crate) fn open_json<T: for<'de> Deserialize<'de>>(web: &Web, ticket: &Ticket) -> Option<T> {
    let bytes = web.secret_box.open(&ticket.sealed).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether a posted CSRF token equals the expected one (constant time).
pub(crate) fn csrf_matches(expected: &str, posted: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(posted.as_bytes()))
}

pub(crate) fn forbidden_csrf() -> WebResponse {
    views::error_page(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form is missing its security token or it does not match. Reload the page and try again.",
    )
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
pub(crate) fn cookie(
    web: &Web,
    name: &str,
    value: &str,
    path: &str,
    same_site: &str,
    max_age: i64,
) -> String {
    let secure = if web.secure_cookies { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    )
}

#[derive(Serialize, Deserialize)]
struct SessionPayload {
    credential: String,
    institution_id: String,
    institution_name: String,
    created_ms: i64,
    csrf: String,
}

/// A signed-in admin.
pub(crate) struct Session {
    credential: Secret,
    pub institution_id: String,
    pub institution_name: String,
    pub csrf: String,
}

impl Session {
    /// The request's session, its idle expiry moved on; else the sign-in page.
    pub async fn of(web: &Web, request: &WebRequest) -> Result<Session, WebResponse> {
        let to_sign_in = || redirect("/admin/sign-in");
        let Some(id) = request.cookie(SESSION_COOKIE) else {
            return Err(to_sign_in());
        };
        let now = Timestamp::now();
        let hash = TokenHash::of(&id);
        let ticket = web
            .store
            .get_ticket(TicketKind::ConsoleSession, &hash, now)
            .await
            .map_err(|e| {
                views::error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    &format!("store: {e}"),
                )
            })?
            .ok_or_else(to_sign_in)?;
        let payload: SessionPayload = open_json(web, &ticket).ok_or_else(to_sign_in)?;
        let ends = payload.created_ms + web.settings.session_max.as_millis() as i64;
        if ends <= now.0 {
            let _ = web
                .store
                .take_ticket(TicketKind::ConsoleSession, &hash, now)
                .await;
            return Err(to_sign_in());
        }
        let idle_end = (now.0 + web.settings.session_idle.as_millis() as i64).min(ends);
        // Written at most once a second per session.
        if idle_end - ticket.expires_at.0 >= 1000 {
            let _ = web
                .store
                .put_ticket(Ticket {
                    expires_at: Timestamp(idle_end),
                    ..ticket
                })
                .await;
        }
        Ok(Session {
            credential: Secret::new(payload.credential),
            institution_id: payload.institution_id,
            institution_name: payload.institution_name,
            csrf: payload.csrf,
        })
    }

    /// A request to the service layer as this admin.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        bearer_request(&self.credential, message)
    }

    pub fn nav<'a>(&'a self, current: &'a str) -> views::Nav<'a> {
        views::Nav {
            institution: &self.institution_name,
            csrf: &self.csrf,
            current,
        }
    }
}

pub(crate) fn bearer_request<T>(credential: &Secret, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {}", credential.expose()).parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

pub(crate) async fn sign_in_page(web: &Web, _request: &WebRequest) -> WebResponse {
    let csrf = random_url_token();
    let mut response = views::html_response(StatusCode::OK, views::sign_in(&csrf, None));
    set_cookie(
        &mut response,
        &cookie(web, SIGN_IN_COOKIE, &csrf, "/admin", "Strict", 600),
    );
    response
}

pub(crate) fn set_cookie(response: &mut WebResponse, value: &str) {
    if let Ok(value) = value.parse() {
        response
            .headers_mut()
            .append(http::header::SET_COOKIE, value);
    }
}

fn sign_in_refused(web: &Web, status: StatusCode, message: &str) -> WebResponse {
    let csrf = random_url_token();
    let mut response = views::html_response(status, views::sign_in(&csrf, Some(message)));
    set_cookie(
        &mut response,
        &cookie(web, SIGN_IN_COOKIE, &csrf, "/admin", "Strict", 600),
    );
    response
}

pub(crate) async fn sign_in(web: &Web, request: &mut WebRequest) -> WebResponse {
    if web.sign_in_limiter.check_key(&request.peer.ip()).is_err() {
        return sign_in_refused(
            web,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts from this address; wait a minute and try again.",
        );
    }
    let expected = request.cookie(SIGN_IN_COOKIE).unwrap_or_default();
    let form = match request.form().await {
        Ok(form) => form,
        Err(response) => return response,
    };
    if !csrf_matches(&expected, form.get("csrf")) {
        return forbidden_csrf();
    }
    let credential = Secret::new(form.get("key").trim());
    let principal = match web
        .auth
        .authenticate(&bearer_request(&credential, ()))
        .await
    {
        Ok(principal) => principal,
        Err(_) => {
            return sign_in_refused(
                web,
                StatusCode::UNAUTHORIZED,
                "That key is not valid (or it was revoked).",
            );
        }
    };
    let institution_id = match principal {
        Principal::Admin { institution_id, .. } => institution_id,
        Principal::Operator => form.get("institution_id").trim().to_string(),
    };
    let institution = match web.store.get_institution(&institution_id).await {
        Ok(institution) if !institution_id.is_empty() => institution,
        _ => {
            return sign_in_refused(
                web,
                StatusCode::UNAUTHORIZED,
                "With the operator token, name an existing institution id.",
            );
        }
    };
    let id = random_url_token();
    let now = Timestamp::now();
    let payload = SessionPayload {
        credential: credential.expose().to_string(),
        institution_id,
        institution_name: institution.display_name,
        created_ms: now.0,
        csrf: random_url_token(),
    };
    let ticket = Ticket {
        kind: TicketKind::ConsoleSession,
        hash: TokenHash::of(&id),
        sealed: seal_json(web, &payload),
        expires_at: now.saturating_add_millis(web.settings.session_idle.as_millis() as i64),
    };
    if let Err(e) = web.store.put_ticket(ticket).await {
        return views::error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            &format!("store: {e}"),
        );
    }
    tracing::info!(institution = %payload.institution_id, "console session started");
    let mut response = redirect("/admin/configurations");
    let max_age = web.settings.session_max.as_secs() as i64;
    set_cookie(
        &mut response,
        &cookie(web, SESSION_COOKIE, &id, "/admin", "Strict", max_age),
    );
    set_cookie(
        &mut response,
        &cookie(web, SIGN_IN_COOKIE, "", "/admin", "Strict", 0),
    );
    response
}

pub(crate) async fn sign_out(web: &Web, request: &mut WebRequest) -> WebResponse {
    let session = match Session::of(web, request).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let form = match request.form().await {
        Ok(form) => form,
        Err(response) => return response,
    };
    if !csrf_matches(&session.csrf, form.get("csrf")) {
        return forbidden_csrf();
    }
    if let Some(id) = request.cookie(SESSION_COOKIE) {
        let _ = web
            .store
            .take_ticket(
                TicketKind::ConsoleSession,
                &TokenHash::of(&id),
                Timestamp::now(),
            )
            .await;
    }
    let mut response = redirect("/admin/sign-in");
    set_cookie(
        &mut response,
        &cookie(web, SESSION_COOKIE, "", "/admin", "Strict", 0),
    );
    response
}
