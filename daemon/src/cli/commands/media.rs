//! `ferry media`: MediaService, the library's items and their owners, and
//! (through SectionService) the sections each is shared with; `get` lists
//! the companion files copied beside the video.

use clap::Subcommand;
use ferry_control::api;
use serde_json::{Value, json};

use super::{companion_kind_name, page, time};
use crate::cli::client::Clients;
use crate::cli::output::{Fields, Output};

#[derive(Subcommand, Debug)]
pub enum MediaCommand {
    /// List media (with --owner: that user's "My Content"; with --section:
    /// the media shared with that section).
    List {
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        section: Option<String>,
    },
    /// Show one media item.
    Get { media_id: String },
    /// Give a media item to another user.
    Transfer {
        media_id: String,
        #[arg(long = "to")]
        new_owner_user_id: String,
    },
    /// Share a media item with sections.
    Share {
        media_id: String,
        /// A section id (repeat for several).
        #[arg(long = "section", required = true)]
        sections: Vec<String>,
    },
    /// Stop sharing a media item with sections.
    Unshare {
        media_id: String,
        /// A section id (repeat for several).
        #[arg(long = "section", required = true)]
        sections: Vec<String>,
    },
}

/// The files copied beside the video: objects for scripts; for people,
/// `kind key (N bytes)` each, separated by `; `.
fn companions(companions: &[api::CompanionFile], out: Output) -> Value {
    if out.json {
        let each = companions.iter().map(|c| {
            json!({
                "kind": companion_kind_name(c.kind),
                "object_key": c.object_key,
                "size_bytes": c.size_bytes,
                "checksum": c.checksum,
            })
        });
        return Value::Array(each.collect());
    }
    let each = companions.iter().map(|c| {
        format!(
            "{} {} ({} bytes)",
            companion_kind_name(c.kind),
            c.object_key,
            c.size_bytes
        )
    });
    json!(each.collect::<Vec<_>>().join("; "))
}

fn media_fields(m: api::Media) -> Fields {
    vec![
        ("media_id", json!(m.media_id)),
        ("owner_user_id", json!(m.owner_user_id)),
        ("title", json!(m.title)),
        ("duration_ms", json!(m.duration_ms)),
        ("size_bytes", json!(m.size_bytes)),
        ("checksum", json!(m.checksum)),
        ("content_type", json!(m.content_type)),
        ("object_key", json!(m.object_key)),
        ("meeting_id", json!(m.meeting_id)),
        ("meeting_uuid", json!(m.meeting_uuid)),
        ("recorded_time", time(&m.recorded_time)),
        ("job_id", json!(m.job_id)),
        ("create_time", time(&m.create_time)),
        ("section_ids", json!(m.section_ids.join(" "))),
    ]
}

pub(super) async fn media(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: MediaCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.media;
    let institution_id = institution.to_string();
    match command {
        MediaCommand::List { owner, section } => {
            let media = collect_pages!(
                |token| client.list_media(api::ListMediaRequest {
                    institution_id: institution_id.clone(),
                    owner_user_id: owner.clone().unwrap_or_default(),
                    section_id: section.clone().unwrap_or_default(),
                    page: page(token)
                }),
                media
            );
            out.list(
                media.into_iter().map(media_fields).collect(),
                &[
                    "media_id",
                    "owner_user_id",
                    "title",
                    "size_bytes",
                    "recorded_time",
                    "section_ids",
                ],
            );
        }
        MediaCommand::Get { media_id } => {
            let media = client
                .get_media(api::GetMediaRequest {
                    media_id,
                    institution_id,
                })
                .await?
                .into_inner();
            let companions = companions(&media.companions, out);
            let mut fields = media_fields(media);
            fields.push(("companions", companions));
            out.item(fields);
        }
        MediaCommand::Transfer {
            media_id,
            new_owner_user_id,
        } => {
            let media = client
                .transfer_media_ownership(api::TransferMediaOwnershipRequest {
                    media_id,
                    new_owner_user_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(media_fields(media));
        }
        MediaCommand::Share { media_id, sections } => {
            let media = clients
                .sections
                .share_media(api::ShareMediaRequest {
                    media_id,
                    section_ids: sections,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(media_fields(media));
        }
        MediaCommand::Unshare { media_id, sections } => {
            let media = clients
                .sections
                .unshare_media(api::UnshareMediaRequest {
                    media_id,
                    section_ids: sections,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(media_fields(media));
        }
    }
    Ok(())
}
