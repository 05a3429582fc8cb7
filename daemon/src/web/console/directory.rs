//! The directory page: upload a users CSV (the format `ferry users sync`
//! reads) as an UPSERT or FULL sync through `SyncUsers`' own handler, and
//! see each rejected line with its reason; the active users below.

use bytes::Bytes;
use ferry_control::api;
use ferry_control::api::user_directory_service_server::UserDirectoryService;
use hyper::StatusCode;
use maud::{Markup, html};

use super::super::session::{Session, csrf_matches, forbidden_csrf};
use super::super::{Web, WebRequest, WebResponse, views};
use super::{ok_page, page};

fn upload_form(session: &Session) -> Markup {
    html! {
        form method="post" action="/admin/directory" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="users" { "Users CSV (email,alternate_zoom_email,display_name,role,external_id, optional ingest_choice)" }
            input id="users" type="file" name="users" accept=".csv,text/csv" required;
            label for="mode" { "Mode" }
            select id="mode" name="mode" {
                option value="upsert" selected { "upsert: add and update the listed users" }
                option value="full" { "full: also deactivate users not listed" }
            }
            button type="submit" id="upload" { "Upload" }
        }
    }
}

pub(crate) async fn page_of(web: &Web, session: &Session) -> WebResponse {
    let users = answer!(
        web.apis
            .users
            .list_users(session.request(api::ListUsersRequest {
                institution_id: session.institution_id.clone(),
                include_inactive: false,
                page: page(100),
            }))
    )
    .users;
    ok_page(
        session,
        "directory",
        "Directory",
        html! {
            (upload_form(session))
            table {
                thead { tr { th { "Email" } th { "Alternate Zoom email" } th { "Name" } th { "External id" } } }
                tbody {
                    @for u in &users {
                        tr { td { (u.email) } td { (u.alternate_zoom_email) } td { (u.display_name) } td { (u.external_id) } }
                    }
                }
            }
        },
    )
}

pub(crate) async fn upload(web: &Web, session: &Session, request: &mut WebRequest) -> WebResponse {
    let fields = match request.multipart().await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or_else(Bytes::new, |(_, v)| v.clone())
    };
    if !csrf_matches(&session.csrf, &String::from_utf8_lossy(&field("csrf"))) {
        return forbidden_csrf();
    }
    let mode = match &field("mode")[..] {
        b"full" => api::SyncMode::Full,
        _ => api::SyncMode::Upsert,
    };
    let records = match crate::cli::commands::users::parse_users_csv(&field("users")[..], "the CSV")
    {
        Ok(records) => records,
        Err(e) => {
            return views::error_page(StatusCode::BAD_REQUEST, "Not accepted", &format!("{e:#}"));
        }
    };
    let header = api::SyncUsersRequest {
        item: Some(api::sync_users_request::Item::Header(
            api::SyncUsersHeader {
                institution_id: session.institution_id.clone(),
                mode: mode as i32,
            },
        )),
    };
    let messages = std::iter::once(header)
        .chain(records.into_iter().map(|r| api::SyncUsersRequest {
            item: Some(api::sync_users_request::Item::User(r)),
        }))
        .map(Ok);
    let summary = answer!(
        web.apis
            .users
            .sync_users_from(session.request(futures::stream::iter(messages)))
    );
    ok_page(
        session,
        "directory",
        "Directory synced",
        html! {
            p id="summary" role="status" {
                (summary.received) " lines read: " (summary.created) " created, " (summary.updated)
                " updated, " (summary.unchanged) " unchanged, " (summary.deactivated) " deactivated, "
                (summary.rejected.len()) " rejected."
            }
            @if !summary.rejected.is_empty() {
                table id="rejected" {
                    thead { tr { th { "Line" } th { "Email" } th { "External id" } th { "Reason" } } }
                    tbody {
                        @for r in &summary.rejected {
                            tr { td { (r.record_index + 2) } td { (r.email) } td { (r.external_id) } td { (r.reason) } }
                        }
                    }
                }
            }
            p { a href="/admin/directory" { "Back to the directory" } }
        },
    )
}
