//! The admin console's pages, each a thin handler over one or two service
//! calls made as the signed-in admin (`Session::request`), so each is
//! scoped to the session's institution exactly as the API is: an id of
//! another institution answers 404 as it answers NOT_FOUND there. Every
//! POST checks the session's CSRF token first. Pages show the first 100
//! items of a list (newest last, as the API orders them).

use ferry_control::api;
use ferry_control::api::media_service_server::MediaService;
use ferry_control::api::user_directory_service_server::UserDirectoryService;
use ferry_control::api::zoom_account_service_server::ZoomAccountService;
use ferry_control::api::zoom_configuration_service_server::ZoomConfigurationService;
use hyper::StatusCode;
use maud::{Markup, html};

use super::session::{Session, csrf_matches, forbidden_csrf};
use super::{Web, WebRequest, WebResponse, redirect, views};

/// The service's answer to `$call` (a handler call, not yet awaited), or
/// its refusal as the page, returned from the handler.
macro_rules! answer {
    ($call:expr) => {
        match $call.await {
            Ok(response) => response.into_inner(),
            Err(status) => return $crate::web::console::refusal(&status),
        }
    };
}

mod directory;
mod jobs;

/// A service refusal as a page: the API's code decides the status.
pub(crate) fn refusal(status: &tonic::Status) -> WebResponse {
    let (code, title) = match status.code() {
        tonic::Code::Unauthenticated => return redirect("/admin/sign-in"),
        tonic::Code::NotFound => (StatusCode::NOT_FOUND, "Not found"),
        tonic::Code::InvalidArgument => (StatusCode::BAD_REQUEST, "Not accepted"),
        tonic::Code::AlreadyExists | tonic::Code::FailedPrecondition => {
            (StatusCode::CONFLICT, "Not possible")
        }
        tonic::Code::PermissionDenied => (StatusCode::FORBIDDEN, "Not allowed"),
        tonic::Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Failed"),
    };
    views::error_page(code, title, status.message())
}

pub(crate) fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn page(size: u32) -> Option<api::PageRequest> {
    Some(api::PageRequest {
        page_size: size,
        page_token: String::new(),
    })
}

pub(crate) fn ok_page(
    session: &Session,
    current: &str,
    title: &str,
    content: Markup,
) -> WebResponse {
    views::html_response(
        StatusCode::OK,
        views::layout(title, Some(&session.nav(current)), content),
    )
}

/// Routes `/admin/...` (`segments` after `admin`) for a signed-in session.
pub(crate) async fn route(
    web: &Web,
    session: Session,
    request: &mut WebRequest,
    segments: &[&str],
) -> WebResponse {
    let get = request.method == hyper::Method::GET;
    if !get && segments == ["directory"] {
        // Multipart: the CSRF token is one of its parts.
        return directory::upload(web, &session, request).await;
    }
    if !get {
        let form = match request.form().await {
            Ok(form) => form,
            Err(response) => return response,
        };
        if !csrf_matches(&session.csrf, form.get("csrf")) {
            return forbidden_csrf();
        }
        return match segments {
            ["configurations"] => add_configuration(web, &session, form.get("display_name")).await,
            ["configurations", id, "rotate"] => rotate_configuration(web, &session, id).await,
            ["configurations", id, "delete"] => delete_configuration(web, &session, id).await,
            ["jobs", id, "retry"] => jobs::retry(web, &session, id).await,
            ["media", id, "owner"] => {
                change_owner(web, &session, id, form.get("owner_email")).await
            }
            _ => views::error_page(StatusCode::NOT_FOUND, "Not found", "No such page."),
        };
    }
    match segments {
        [] | [""] => redirect("/admin/configurations"),
        ["configurations"] => configurations(web, &session).await,
        ["configurations", id, "delete"] => confirm_delete(web, &session, id).await,
        ["accounts"] => accounts(web, &session).await,
        ["jobs"] => jobs::list(web, &session, request).await,
        ["jobs", "events"] => jobs::events(web, &session).await,
        ["media"] => media(web, &session, request).await,
        ["directory"] => directory::page_of(web, &session).await,
        _ => views::error_page(StatusCode::NOT_FOUND, "Not found", "No such page."),
    }
}

async fn configurations(web: &Web, session: &Session) -> WebResponse {
    let listed = answer!(
        web.apis
            .configurations
            .list_zoom_configurations(session.request(api::ListZoomConfigurationsRequest {
                institution_id: session.institution_id.clone(),
                page: page(100),
            }))
    );
    ok_page(
        session,
        "configurations",
        "Zoom configurations",
        html! {
            form.inline method="post" action="/admin/configurations" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="display_name" { "Name" }
                input id="display_name" type="text" name="display_name" required maxlength="100";
                button type="submit" id="add-configuration" { "Add configuration" }
            }
            table {
                thead { tr {
                    th { "Name" } th { "Installed accounts" } th { "Ingest mode" } th { "After copy" }
                    th { "Token issued" } th {}
                } }
                tbody {
                    @for c in &listed.configurations {
                        tr id={ "configuration-" (c.configuration_id) } {
                            td { (c.display_name) }
                            td { (c.installed_account_count) }
                            td.ingest-mode { (enum_text(api::IngestMode::try_from(c.ingest_mode).map(|m| m.as_str_name()), "INGEST_MODE_")) }
                            td.after-copy { (enum_text(api::AfterCopy::try_from(c.after_copy).map(|a| a.as_str_name()), "AFTER_COPY_")) }
                            td { (time(c.token_issue_time.as_ref())) }
                            td.actions {
                                form method="post" action={ "/admin/configurations/" (c.configuration_id) "/rotate" } {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    button type="submit" { "Rotate token" }
                                }
                                a href={ "/admin/configurations/" (c.configuration_id) "/delete" } { "Delete…" }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// An enum value as the console shows it: its proto name without the
/// prefix, lowercased, as the CLI and the configuration file spell it.
fn enum_text<E>(name: Result<&str, E>, prefix: &str) -> String {
    name.map_or_else(
        |_| "unknown".to_string(),
        |n| n.trim_start_matches(prefix).to_ascii_lowercase(),
    )
}

/// The token, shown once (the response is `no-store`).
fn token_shown(
    web: &Web,
    session: &Session,
    configuration: Option<api::ZoomConfiguration>,
    token: &str,
) -> WebResponse {
    let name = configuration.map(|c| c.display_name).unwrap_or_default();
    let install_url = web.marketplace.as_ref().map(|m| m.app().install_url());
    ok_page(
        session,
        "configurations",
        "Configuration token",
        html! {
            p { "The configuration token of " strong { (name) } ". It is shown only now: copy it and give it to the Zoom account admin." }
            div.token {
                code id="configuration-token" { (token) }
                button type="button" id="copy-token" data-copy="configuration-token" { "Copy" }
            }
            @if let Some(url) = install_url {
                p { "The Zoom account admin installs the app here, then pastes the token when asked: "
                    a id="install-link" href=(url) { (url) } }
            }
            p { a href="/admin/configurations" { "Back to the configurations" } }
        },
    )
}

async fn add_configuration(web: &Web, session: &Session, name: &str) -> WebResponse {
    let created = web
        .apis
        .configurations
        .create_zoom_configuration(session.request(api::CreateZoomConfigurationRequest {
            institution_id: session.institution_id.clone(),
            display_name: name.to_string(),
            view_priority: Vec::new(),
            ..Default::default()
        }))
        .await;
    match created {
        Ok(created) => {
            let created = created.into_inner();
            token_shown(
                web,
                session,
                created.configuration,
                &created.configuration_token,
            )
        }
        Err(status) => refusal(&status),
    }
}

async fn rotate_configuration(web: &Web, session: &Session, id: &str) -> WebResponse {
    let rotated = web
        .apis
        .configurations
        .rotate_zoom_configuration_token(session.request(
            api::RotateZoomConfigurationTokenRequest {
                institution_id: session.institution_id.clone(),
                configuration_id: id.to_string(),
            },
        ))
        .await;
    match rotated {
        Ok(rotated) => {
            let rotated = rotated.into_inner();
            token_shown(
                web,
                session,
                rotated.configuration,
                &rotated.configuration_token,
            )
        }
        Err(status) => refusal(&status),
    }
}

/// The accounts a configuration's deletion would uninstall.
async fn accounts_of(
    web: &Web,
    session: &Session,
    configuration_id: &str,
) -> Result<Vec<api::ZoomAccount>, tonic::Status> {
    let listed = web
        .apis
        .accounts
        .list_zoom_accounts(session.request(api::ListZoomAccountsRequest {
            institution_id: session.institution_id.clone(),
            include_uninstalled: false,
            page: page(1000),
        }))
        .await?
        .into_inner();
    Ok(listed
        .accounts
        .into_iter()
        .filter(|a| a.configuration_id == configuration_id)
        .collect())
}

async fn confirm_delete(web: &Web, session: &Session, id: &str) -> WebResponse {
    let configuration = answer!(
        web.apis
            .configurations
            .get_zoom_configuration(session.request(api::GetZoomConfigurationRequest {
                institution_id: session.institution_id.clone(),
                configuration_id: id.to_string(),
            }))
    );
    let accounts = match accounts_of(web, session, id).await {
        Ok(accounts) => accounts,
        Err(status) => return refusal(&status),
    };
    ok_page(
        session,
        "configurations",
        "Delete configuration",
        html! {
            p { "Delete " strong { (configuration.display_name) } "?" }
            @if accounts.is_empty() {
                p { "No Zoom account is installed with it." }
            } @else {
                p { "This uninstalls these Zoom accounts; their later recordings are no longer copied:" }
                ul id="uninstalls" { @for a in &accounts { li { code { (a.zoom_account_id) } } } }
            }
            form method="post" action={ "/admin/configurations/" (id) "/delete" } {
                input type="hidden" name="csrf" value=(session.csrf);
                button.danger type="submit" id="confirm-delete" { "Delete and uninstall" }
                " " a href="/admin/configurations" { "Cancel" }
            }
        },
    )
}

async fn delete_configuration(web: &Web, session: &Session, id: &str) -> WebResponse {
    let deleted = web
        .apis
        .configurations
        .delete_zoom_configuration(session.request(api::DeleteZoomConfigurationRequest {
            institution_id: session.institution_id.clone(),
            configuration_id: id.to_string(),
        }))
        .await;
    match deleted {
        Ok(_) => redirect("/admin/configurations"),
        Err(status) => refusal(&status),
    }
}

async fn accounts(web: &Web, session: &Session) -> WebResponse {
    let listed = answer!(web.apis.accounts.list_zoom_accounts(session.request(
        api::ListZoomAccountsRequest {
            institution_id: session.institution_id.clone(),
            include_uninstalled: false,
            page: page(100),
        }
    )));
    let mut rows = Vec::new();
    for a in listed.accounts {
        let marketplace = web
            .store
            .account_tokens(&a.zoom_account_id)
            .await
            .map(|t| t.is_some())
            .unwrap_or(false);
        rows.push((a, marketplace));
    }
    ok_page(
        session,
        "accounts",
        "Zoom accounts",
        html! {
            table {
                thead { tr { th { "Zoom account" } th { "Plan" } th { "Installed" } th { "API credentials" } } }
                tbody {
                    @for (a, marketplace) in &rows {
                        tr id={ "account-" (a.zoom_account_id) } {
                            td { code { (a.zoom_account_id) } }
                            td { (api::ZoomPlan::try_from(a.plan).map(|p| p.as_str_name().trim_start_matches("ZOOM_PLAN_").to_ascii_lowercase()).unwrap_or_default()) }
                            td { (time(a.install_time.as_ref())) }
                            td {
                                @if *marketplace { "Marketplace OAuth" }
                                @else if a.has_oauth_credentials { "Server-to-Server OAuth" }
                                @else { "none" }
                            }
                        }
                    }
                }
            }
        },
    )
}

async fn media(web: &Web, session: &Session, request: &WebRequest) -> WebResponse {
    let owner = request.query("owner").unwrap_or_default().to_string();
    let listed = answer!(
        web.apis
            .media
            .list_media(session.request(api::ListMediaRequest {
                institution_id: session.institution_id.clone(),
                owner_user_id: owner.clone(),
                page: page(100),
                ..Default::default()
            }))
    );
    let users = web
        .apis
        .users
        .list_users(session.request(api::ListUsersRequest {
            institution_id: session.institution_id.clone(),
            include_inactive: false,
            page: page(1000),
        }))
        .await
        .map(|u| u.into_inner().users)
        .unwrap_or_default();
    let email_of = |user_id: &str| {
        users
            .iter()
            .find(|u| u.user_id == user_id)
            .map_or_else(|| user_id.to_string(), |u| u.email.clone())
    };
    ok_page(
        session,
        "media",
        "Media",
        html! {
            form.inline method="get" action="/admin/media" {
                label for="owner" { "Owner" }
                select id="owner" name="owner" {
                    option value="" { "Everyone" }
                    @for u in &users { option value=(u.user_id) selected[u.user_id == owner] { (u.email) } }
                }
                button type="submit" { "Show" }
            }
            table {
                thead { tr { th { "Title" } th { "Owner" } th { "Size" } th { "Recorded" } th { "Change owner" } } }
                tbody {
                    @for m in &listed.media {
                        tr id={ "media-" (m.media_id) } {
                            td { (m.title) }
                            td.owner { (email_of(&m.owner_user_id)) }
                            td { (m.size_bytes) " bytes" }
                            td { (time(m.recorded_time.as_ref())) }
                            td {
                                form.inline method="post" action={ "/admin/media/" (m.media_id) "/owner" } {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    input type="email" name="owner_email" placeholder="new owner's email" required;
                                    button type="submit" { "Change owner" }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

async fn change_owner(web: &Web, session: &Session, media_id: &str, email: &str) -> WebResponse {
    let user = answer!(web.apis.users.lookup_user_by_email(session.request(
        api::LookupUserByEmailRequest {
            institution_id: session.institution_id.clone(),
            email: email.to_string(),
        }
    )));
    let moved = web
        .apis
        .media
        .transfer_media_ownership(session.request(api::TransferMediaOwnershipRequest {
            institution_id: session.institution_id.clone(),
            media_id: media_id.to_string(),
            new_owner_user_id: user.user_id,
        }))
        .await;
    match moved {
        Ok(_) => redirect("/admin/media"),
        Err(status) => refusal(&status),
    }
}
