//! The Zoom Marketplace install, the seed's Step 2 as Zoom runs it. `start`
//! sends the admin's browser to Zoom's authorize page with PKCE (S256) and
//! a `state` that is single-use, short-lived and bound to this browser by a
//! cookie; `callback` spends the state, exchanges the code, and asks Zoom
//! who installed (`/v2/users/me`): a Basic user is a free account and is
//! refused with the seed's words, whatever the browser says. `prompt` asks
//! for the configuration token and `finish` installs through
//! `InstallZoomAccount`'s own handler (so its rules, and only those,
//! apply), then stores the account's tokens sealed.

use ferry_control::api;
use ferry_control::api::zoom_account_service_server::ZoomAccountService;
use ferry_control::model::{Timestamp, ZoomPlan};
use ferry_control::rules;
use ferry_control::secrets::{Secret, TokenHash};
use ferry_control::store::{Ticket, TicketKind};
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::session::{cookie, csrf_matches, forbidden_csrf, open_json, seal_json, set_cookie};
use super::{Web, WebRequest, WebResponse, redirect, views};
use crate::marketplace::{LICENSED_USER_TYPE, Marketplace, pkce_pair, random_url_token};

/// How long a `state` may wait for Zoom's redirect.
const STATE_TTL_MS: i64 = 10 * 60 * 1000;
/// How long an approved install may wait for its configuration token.
const PENDING_TTL_MS: i64 = 30 * 60 * 1000;
const STATE_COOKIE: &str = "ferry_install_state";
const PENDING_COOKIE: &str = "ferry_install";

#[derive(Serialize, Deserialize)]
struct StatePayload {
    browser: String,
    verifier: String,
}

#[derive(Serialize, Deserialize)]
struct PendingPayload {
    zoom_account_id: String,
    email: String,
    access_token: String,
    refresh_token: String,
    expires_in_secs: u64,
    csrf: String,
}

fn not_configured() -> WebResponse {
    views::error_page(
        StatusCode::NOT_FOUND,
        "Not available",
        "This Ferry has no Zoom Marketplace app configured (zoom.client_id, zoom.client_secret, zoom.public_url).",
    )
}

fn unavailable(message: &str) -> WebResponse {
    views::error_page(StatusCode::SERVICE_UNAVAILABLE, "Try again later", message)
}

fn start_again(message: &str) -> WebResponse {
    views::error_page(StatusCode::BAD_REQUEST, "Start the install again", message)
}

/// `GET /zoom/install`.
pub(crate) async fn start(web: &Web, request: &WebRequest) -> WebResponse {
    let Some(marketplace) = &web.marketplace else {
        return not_configured();
    };
    if web.install_limiter.check_key(&request.peer.ip()).is_err() {
        return views::error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Try again in a minute",
            "Too many installs were started from this address.",
        );
    }
    let state = random_url_token();
    let browser = random_url_token();
    let (verifier, challenge) = pkce_pair();
    let now = Timestamp::now();
    let ticket = Ticket {
        kind: TicketKind::InstallState,
        hash: TokenHash::of(&state),
        sealed: seal_json(
            web,
            &StatePayload {
                browser: TokenHash::of(&browser).as_hex().to_string(),
                verifier: verifier.expose().to_string(),
            },
        ),
        expires_at: now.saturating_add_millis(STATE_TTL_MS),
    };
    if let Err(e) = web.store.put_ticket(ticket).await {
        return unavailable(&format!("store: {e}"));
    }
    let mut response = redirect(&marketplace.authorize_url(&state, &challenge));
    // Lax: Zoom's redirect back is a cross-site top-level navigation.
    set_cookie(
        &mut response,
        &cookie(
            web,
            STATE_COOKIE,
            &browser,
            "/zoom",
            "Lax",
            STATE_TTL_MS / 1000,
        ),
    );
    response
}

/// `GET /zoom/oauth/callback?code&state`.
pub(crate) async fn callback(web: &Web, request: &WebRequest) -> WebResponse {
    let Some(marketplace) = &web.marketplace else {
        return not_configured();
    };
    if request.query("error").is_some() {
        return views::error_page(
            StatusCode::BAD_REQUEST,
            "Not installed",
            "Zoom did not authorize the app, so nothing was installed.",
        );
    }
    let (Some(state), Some(code)) = (request.query("state"), request.query("code")) else {
        return start_again("Zoom's answer is missing its code or state.");
    };
    let now = Timestamp::now();
    // Taken, not read: a state is spent by its first use, good or bad.
    let ticket = match web
        .store
        .take_ticket(TicketKind::InstallState, &TokenHash::of(state), now)
        .await
    {
        Ok(Some(ticket)) => ticket,
        Ok(None) => {
            return start_again(
                "This install link has expired or was already used. Start again from the Install button.",
            );
        }
        Err(e) => return unavailable(&format!("store: {e}")),
    };
    let Some(payload) = open_json::<StatePayload>(web, &ticket) else {
        return start_again("This install link cannot be read. Start again.");
    };
    let browser = request.cookie(STATE_COOKIE).unwrap_or_default();
    if browser.is_empty() || !TokenHash::of(&browser).matches(&TokenHash::from_hex(payload.browser))
    {
        return start_again(
            "This install was started in another browser. Start again from the Install button in this one.",
        );
    }
    approved(web, marketplace, code, &Secret::new(payload.verifier), now).await
}

async fn approved(
    web: &Web,
    marketplace: &Marketplace,
    code: &str,
    verifier: &Secret,
    now: Timestamp,
) -> WebResponse {
    let issued = match marketplace.exchange_code(code, verifier).await {
        Ok(issued) => issued,
        Err(e) => {
            tracing::warn!(error = %e, "zoom marketplace code exchange failed");
            return start_again("Zoom did not accept the authorization. Start the install again.");
        }
    };
    let user = match marketplace.installing_user(&issued.access_token).await {
        Ok(user) => user,
        Err(e) => return unavailable(&format!("Zoom could not say who installed the app: {e}")),
    };
    if user.user_type != LICENSED_USER_TYPE {
        // A Basic (or unlicensed) user: the account is on Zoom's free plan.
        let refusal = rules::check_plan_can_install(ZoomPlan::Free)
            .err()
            .map(|r| r.to_string())
            .unwrap_or_default();
        tracing::info!(account = %user.account_id, "marketplace install refused: not a paid plan");
        return views::error_page(StatusCode::FORBIDDEN, "Not installed", &refusal);
    }
    let pending_id = random_url_token();
    let payload = PendingPayload {
        zoom_account_id: user.account_id,
        email: user.email,
        access_token: issued.access_token.expose().to_string(),
        refresh_token: issued.refresh_token.expose().to_string(),
        expires_in_secs: issued.expires_in.as_secs(),
        csrf: random_url_token(),
    };
    let ticket = Ticket {
        kind: TicketKind::PendingInstall,
        hash: TokenHash::of(&pending_id),
        sealed: seal_json(web, &payload),
        expires_at: now.saturating_add_millis(PENDING_TTL_MS),
    };
    if let Err(e) = web.store.put_ticket(ticket).await {
        return unavailable(&format!("store: {e}"));
    }
    let mut response = redirect("/zoom/install/token");
    set_cookie(
        &mut response,
        &cookie(web, STATE_COOKIE, "", "/zoom", "Lax", 0),
    );
    set_cookie(
        &mut response,
        &cookie(
            web,
            PENDING_COOKIE,
            &pending_id,
            "/zoom/install",
            "Lax",
            PENDING_TTL_MS / 1000,
        ),
    );
    response
}

async fn pending(web: &Web, request: &WebRequest) -> Result<(String, PendingPayload), WebResponse> {
    let id = request.cookie(PENDING_COOKIE).ok_or_else(|| {
        start_again("No install is waiting in this browser. Start again from the Install button.")
    })?;
    let ticket = web
        .store
        .get_ticket(
            TicketKind::PendingInstall,
            &TokenHash::of(&id),
            Timestamp::now(),
        )
        .await
        .map_err(|e| unavailable(&format!("store: {e}")))?
        .ok_or_else(|| {
            start_again("This install has expired. Start again from the Install button.")
        })?;
    let payload = open_json(web, &ticket)
        .ok_or_else(|| start_again("This install cannot be read. Start again."))?;
    Ok((id, payload))
}

/// `GET /zoom/install/token`: the configuration token prompt.
pub(crate) async fn prompt(web: &Web, request: &WebRequest) -> WebResponse {
    match pending(web, request).await {
        Ok((_, p)) => views::html_response(
            StatusCode::OK,
            views::token_prompt(&p.zoom_account_id, &p.email, &p.csrf, None),
        ),
        Err(response) => response,
    }
}

/// `POST /zoom/install/token`: installs under `InstallZoomAccount`'s rules.
pub(crate) async fn finish(web: &Web, request: &mut WebRequest) -> WebResponse {
    let Some(marketplace) = &web.marketplace else {
        return not_configured();
    };
    let (id, payload) = match pending(web, request).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let form = match request.form().await {
        Ok(form) => form,
        Err(response) => return response,
    };
    if !csrf_matches(&payload.csrf, form.get("csrf")) {
        return forbidden_csrf();
    }
    let install = api::InstallZoomAccountRequest {
        configuration_token: form.get("configuration_token").to_string(),
        zoom_account_id: payload.zoom_account_id.clone(),
        plan: api::ZoomPlan::Licensed as i32,
        oauth_credentials: None,
    };
    let account = match web
        .apis
        .accounts
        .install_zoom_account(tonic::Request::new(install))
        .await
    {
        Ok(account) => account.into_inner(),
        Err(status) => {
            let (code, message) = match status.code() {
                tonic::Code::Unauthenticated | tonic::Code::InvalidArgument => (
                    StatusCode::BAD_REQUEST,
                    "That is not a valid configuration token. Copy it again from your institution's \
                     Zoom configuration page."
                        .to_string(),
                ),
                tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition => {
                    (StatusCode::CONFLICT, status.message().to_string())
                }
                _ => (StatusCode::SERVICE_UNAVAILABLE, status.message().to_string()),
            };
            return views::html_response(
                code,
                views::token_prompt(
                    &payload.zoom_account_id,
                    &payload.email,
                    &payload.csrf,
                    Some(&message),
                ),
            );
        }
    };
    let issued = crate::marketplace::IssuedTokens {
        access_token: Secret::new(payload.access_token),
        refresh_token: Secret::new(payload.refresh_token),
        expires_in: std::time::Duration::from_secs(payload.expires_in_secs),
    };
    let now = Timestamp::now();
    if let Err(e) = web
        .store
        .put_account_tokens(marketplace.seal_tokens(&account.zoom_account_id, &issued, now))
        .await
    {
        return unavailable(&format!(
            "the account was installed but its Zoom tokens could not be stored ({e}); install again"
        ));
    }
    let _ = web
        .store
        .take_ticket(TicketKind::PendingInstall, &TokenHash::of(&id), now)
        .await;
    let institution = web
        .store
        .get_institution(&account.institution_id)
        .await
        .map(|i| i.display_name)
        .unwrap_or(account.institution_id);
    tracing::info!(account = %account.zoom_account_id, "zoom account installed from the marketplace");
    let mut response = views::html_response(
        StatusCode::OK,
        views::installed(&account.zoom_account_id, &institution),
    );
    set_cookie(
        &mut response,
        &cookie(web, PENDING_COOKIE, "", "/zoom/install", "Lax", 0),
    );
    response
}
