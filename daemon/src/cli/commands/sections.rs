//! `ferry sections`: SectionService's sections and mapping rules (sharing
//! one media item is `ferry media share|unshare`). A sync reads the whole
//! CSV before sending anything, so a malformed file sends nothing.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use ferry_control::api;
use serde_json::{Value, json};

use super::{RejectedLine, SyncCounts, page, print_sync_summary, sync_mode, time};
use crate::cli::client::Clients;
use crate::cli::output::{Fields, Output};

#[derive(Subcommand, Debug)]
pub enum SectionsCommand {
    /// Sync sections from a CSV file with the header external_id,name
    /// (any column order; external_id is the directory's key, such as a
    /// course code)
    Sync {
        file: PathBuf,
        /// full deactivates sections absent from the file (they keep their
        /// media); upsert only adds and updates.
        #[arg(long, default_value = "upsert")]
        mode: String,
    },
    /// List sections.
    List {
        /// Include inactive sections.
        #[arg(long)]
        all: bool,
    },
    /// Map a Zoom meeting id or a topic prefix to sections: media of
    /// matching meetings are shared with them when their jobs complete.
    Map {
        /// A Zoom meeting id (a recurring meeting keeps it all term).
        #[arg(
            long,
            conflicts_with = "topic_prefix",
            required_unless_present = "topic_prefix"
        )]
        meeting: Option<u64>,
        /// The start of the meeting topic (case-insensitive).
        #[arg(long)]
        topic_prefix: Option<String>,
        /// A section id (repeat for several).
        #[arg(long = "section", required = true)]
        sections: Vec<String>,
        /// The Zoom configuration; may be left out when there is only one.
        #[arg(long)]
        configuration: Option<String>,
    },
    /// List mapping rules.
    Mappings {
        /// Only this configuration's.
        #[arg(long)]
        configuration: Option<String>,
    },
    /// Delete a mapping rule (the media it shared stay shared).
    Unmap { mapping_id: String },
    /// Apply a mapping rule to the media already in the library
    /// (idempotent); says how many media gained a share.
    Apply {
        #[arg(long = "mapping")]
        mapping_id: String,
    },
}

fn section_fields(s: api::Section) -> Fields {
    vec![
        ("section_id", json!(s.section_id)),
        ("external_id", json!(s.external_id)),
        ("name", json!(s.name)),
        ("active", json!(s.active)),
        ("create_time", time(&s.create_time)),
        ("update_time", time(&s.update_time)),
    ]
}

fn mapping_fields(m: api::SectionMapping) -> Fields {
    let (meeting_id, topic_prefix) = match m.matcher {
        Some(api::section_mapping::Matcher::MeetingId(id)) => (json!(id), Value::Null),
        Some(api::section_mapping::Matcher::TopicPrefix(prefix)) => (Value::Null, json!(prefix)),
        None => (Value::Null, Value::Null),
    };
    vec![
        ("mapping_id", json!(m.mapping_id)),
        ("configuration_id", json!(m.configuration_id)),
        ("meeting_id", meeting_id),
        ("topic_prefix", topic_prefix),
        ("section_ids", json!(m.section_ids.join(" "))),
    ]
}

/// The sections CSV's records (`external_id,name`, any column order);
/// `source` names the file in errors. Record `i` is on line `i + 2`.
pub fn parse_sections_csv(
    reader: impl std::io::Read,
    source: &str,
) -> anyhow::Result<Vec<api::SectionRecord>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = reader
        .headers()
        .with_context(|| format!("{source}: no header line"))?;
    let column = |name: &str| -> anyhow::Result<usize> {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .with_context(|| {
                format!("{source}: header has no {name} column (expected external_id,name)")
            })
    };
    let (external, name) = (column("external_id")?, column("name")?);
    let mut records = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{source}: line {}", line + 2))?;
        let field = |i: usize| row.get(i).unwrap_or_default().to_string();
        records.push(api::SectionRecord {
            external_id: field(external),
            name: field(name),
        });
    }
    Ok(records)
}

fn read_sections_csv(path: &Path) -> anyhow::Result<Vec<api::SectionRecord>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_sections_csv(file, &path.display().to_string())
}

pub(super) async fn sections(
    clients: &mut Clients,
    out: Output,
    institution: &str,
    command: SectionsCommand,
) -> anyhow::Result<()> {
    let client = &mut clients.sections;
    let institution_id = institution.to_string();
    match command {
        SectionsCommand::Sync { file, mode } => {
            let mode = sync_mode(&mode)?;
            let records = read_sections_csv(&file)?;
            let header = api::SyncSectionsRequest {
                item: Some(api::sync_sections_request::Item::Header(
                    api::SyncSectionsHeader {
                        institution_id,
                        mode: mode as i32,
                    },
                )),
            };
            let messages = std::iter::once(header).chain(records.into_iter().map(|r| {
                api::SyncSectionsRequest {
                    item: Some(api::sync_sections_request::Item::Section(r)),
                }
            }));
            let summary = client
                .sync_sections(tokio_stream::iter(messages))
                .await?
                .into_inner();
            print_sync_summary(
                out,
                SyncCounts {
                    received: summary.received,
                    applied: summary.applied,
                    created: summary.created,
                    updated: summary.updated,
                    unchanged: summary.unchanged,
                    deactivated: summary.deactivated,
                },
                summary
                    .rejected
                    .into_iter()
                    .map(|r| RejectedLine {
                        record_index: r.record_index,
                        external_id: r.external_id,
                        email: None,
                        reason: r.reason,
                    })
                    .collect(),
            );
        }
        SectionsCommand::List { all } => {
            let sections = collect_pages!(
                |token| client.list_sections(api::ListSectionsRequest {
                    institution_id: institution_id.clone(),
                    include_inactive: all,
                    page: page(token)
                }),
                sections
            );
            out.list(
                sections.into_iter().map(section_fields).collect(),
                &["section_id", "external_id", "name", "active"],
            );
        }
        SectionsCommand::Map {
            meeting,
            topic_prefix,
            sections,
            configuration,
        } => {
            use api::create_section_mapping_request::Matcher;
            let matcher = match (meeting, topic_prefix) {
                (Some(id), _) => Matcher::MeetingId(id),
                (None, Some(prefix)) => Matcher::TopicPrefix(prefix),
                (None, None) => anyhow::bail!("give --meeting or --topic-prefix"),
            };
            let mapping = client
                .create_section_mapping(api::CreateSectionMappingRequest {
                    institution_id,
                    configuration_id: configuration.unwrap_or_default(),
                    matcher: Some(matcher),
                    section_ids: sections,
                })
                .await?
                .into_inner();
            out.item(mapping_fields(mapping));
        }
        SectionsCommand::Mappings { configuration } => {
            let mappings = collect_pages!(
                |token| client.list_section_mappings(api::ListSectionMappingsRequest {
                    institution_id: institution_id.clone(),
                    configuration_id: configuration.clone().unwrap_or_default(),
                    page: page(token)
                }),
                mappings
            );
            out.list(
                mappings.into_iter().map(mapping_fields).collect(),
                &[
                    "mapping_id",
                    "configuration_id",
                    "meeting_id",
                    "topic_prefix",
                    "section_ids",
                ],
            );
        }
        SectionsCommand::Unmap { mapping_id } => {
            let mapping = client
                .delete_section_mapping(api::DeleteSectionMappingRequest {
                    mapping_id,
                    institution_id,
                })
                .await?
                .into_inner();
            out.item(mapping_fields(mapping));
        }
        SectionsCommand::Apply { mapping_id } => {
            let applied = client
                .apply_section_mapping(api::ApplySectionMappingRequest {
                    mapping_id,
                    institution_id,
                })
                .await?
                .into_inner();
            if out.json {
                out.item(vec![
                    ("media_matched", json!(applied.media_matched)),
                    ("media_shared", json!(applied.media_shared)),
                    ("shares_added", json!(applied.shares_added)),
                ]);
            } else {
                println!(
                    "{} media matched, {} gained a share ({} shares added)",
                    applied.media_matched, applied.media_shared, applied.shares_added
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_is_read_by_header_name_and_errors_name_the_line() {
        let csv = "Name,external_id\nChemistry 101,CHEM101\n\"Physics, I\",PHYS101\n";
        let records = parse_sections_csv(csv.as_bytes(), "s.csv").expect("valid csv");
        assert_eq!(
            records,
            vec![
                api::SectionRecord {
                    external_id: "CHEM101".into(),
                    name: "Chemistry 101".into()
                },
                api::SectionRecord {
                    external_id: "PHYS101".into(),
                    name: "Physics, I".into()
                },
            ]
        );
        let missing = parse_sections_csv("id,name\n".as_bytes(), "s.csv").expect_err("no column");
        assert_eq!(
            missing.to_string(),
            "s.csv: header has no external_id column (expected external_id,name)"
        );
        let ragged = parse_sections_csv("external_id,name\nA,a\nB,b,extra\n".as_bytes(), "s.csv")
            .expect_err("ragged row");
        assert_eq!(ragged.to_string(), "s.csv: line 3");
    }
}
