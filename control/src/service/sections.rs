//! SectionService: course sections synced from the directory, the mapping
//! rules that share a configuration's meetings with sections, and admins'
//! shares and unshares. Every call is scoped like the other services (the
//! admin key's institution, or the operator's explicit one) and the store
//! answers NOT_FOUND for any id of another institution, never a code that
//! would tell that it exists.

use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};

use super::ControlContext;
use super::convert;
use super::sync_stream::{SyncRecords, read_header, read_records};
use super::validate::{optional_text, page_query, page_response, required_id, required_text};
use crate::api;
use crate::api::section_service_server::SectionService;
use crate::model::{
    MAX_SECTIONS_PER_MAPPING, MediaSharing, NewSectionMapping, RejectedSection, SectionMatcher,
    SectionRecord, SectionSync, Timestamp,
};
use crate::store::PageQuery;

/// Longest external id, name and topic prefix, in characters.
const MAX_TEXT_CHARS: usize = 200;

pub struct SectionApi {
    context: Arc<ControlContext>,
}

impl SectionApi {
    pub(super) fn new(context: Arc<ControlContext>) -> Self {
        SectionApi { context }
    }
}

/// Checks one record's fields; the error names the field and says why.
fn validate_record(
    record_index: u32,
    record: &api::SectionRecord,
) -> Result<SectionRecord, String> {
    let text = |field: &str, value: &str| {
        required_text(field, value, MAX_TEXT_CHARS).map_err(|status| status.message().to_string())
    };
    Ok(SectionRecord {
        record_index,
        external_id: text("external_id", &record.external_id)?,
        name: text("name", &record.name)?,
    })
}

/// 1 to `MAX_SECTIONS_PER_MAPPING` section ids, trimmed, each once.
fn section_ids(field: &str, ids: &[String]) -> Result<Vec<String>, Status> {
    if ids.is_empty() || ids.len() > MAX_SECTIONS_PER_MAPPING {
        return Err(Status::invalid_argument(format!(
            "{field}: between 1 and {MAX_SECTIONS_PER_MAPPING} sections required, got {}",
            ids.len()
        )));
    }
    let mut checked = Vec::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        checked.push(required_id(&format!("{field}[{index}]"), id)?);
    }
    checked.sort();
    checked.dedup();
    Ok(checked)
}

/// The mapping's matcher: a meeting id other than 0, or a prefix with
/// something besides blanks.
fn matcher(
    matcher: Option<&api::create_section_mapping_request::Matcher>,
) -> Result<SectionMatcher, Status> {
    use api::create_section_mapping_request::Matcher;
    match matcher {
        Some(Matcher::MeetingId(0)) => Err(Status::invalid_argument("meeting_id: must not be 0")),
        Some(Matcher::MeetingId(id)) => Ok(SectionMatcher::MeetingId(*id)),
        Some(Matcher::TopicPrefix(prefix)) => Ok(SectionMatcher::TopicPrefix(required_text(
            "topic_prefix",
            prefix,
            MAX_TEXT_CHARS,
        )?)),
        None => Err(Status::invalid_argument(
            "matcher: one of meeting_id or topic_prefix is required",
        )),
    }
}

impl SectionApi {
    /// `SyncSections` on any stream of messages, with the same
    /// authentication, scoping, validation and atomic apply as `SyncUsers`.
    pub async fn sync_sections_from<S>(
        &self,
        request: Request<S>,
    ) -> Result<Response<api::SyncSectionsSummary>, Status>
    where
        S: futures::Stream<Item = Result<api::SyncSectionsRequest, Status>> + Unpin + Send,
    {
        let principal = self.context.auth.authenticate(&request).await?;
        let mut stream = request.into_inner();
        let header = read_header(&mut stream).await?;
        let institution_id = principal.scope(&header.institution_id)?;
        let mode = convert::sync_mode_from_api(header.mode)?;
        let SyncRecords {
            received,
            valid: records,
            rejected,
        } = read_records(
            &mut stream,
            self.context.max_sync_records,
            mode,
            |index, record: api::SectionRecord| {
                validate_record(index, &record).map_err(|reason| RejectedSection {
                    record_index: index,
                    external_id: record.external_id,
                    reason,
                })
            },
        )
        .await?;
        let outcome = self
            .context
            .store
            .sync_sections(SectionSync {
                institution_id: institution_id.clone(),
                mode,
                records,
                rejected_upfront: rejected,
                now: Timestamp::now(),
            })
            .await?;
        let applied = outcome.created + outcome.updated + outcome.unchanged;
        tracing::info!(institution = %institution_id, received, applied, created = outcome.created,
            updated = outcome.updated, deactivated = outcome.deactivated,
            rejected = outcome.rejected.len(), "sections synced");
        Ok(Response::new(api::SyncSectionsSummary {
            mode: convert::sync_mode_to_api(mode) as i32,
            received,
            applied,
            created: outcome.created,
            updated: outcome.updated,
            unchanged: outcome.unchanged,
            deactivated: outcome.deactivated,
            rejected: outcome
                .rejected
                .into_iter()
                .map(|r| api::RejectedSectionRecord {
                    record_index: r.record_index,
                    external_id: r.external_id,
                    reason: r.reason,
                })
                .collect(),
        }))
    }

    /// The configuration a mapping belongs to: the one named, or the
    /// institution's only one.
    async fn mapping_configuration(
        &self,
        institution_id: &str,
        requested: &str,
    ) -> Result<String, Status> {
        let requested = optional_text("configuration_id", requested, MAX_TEXT_CHARS)?;
        if !requested.is_empty() {
            return Ok(requested);
        }
        let configurations = self
            .context
            .store
            .list_configurations(institution_id, &PageQuery::first(2))
            .await?;
        match configurations.items.as_slice() {
            [only] => Ok(only.configuration_id.clone()),
            [] => Err(Status::failed_precondition(
                "configuration_id: the institution has no zoom configuration",
            )),
            _ => Err(Status::invalid_argument(
                "configuration_id: required when the institution has more than one zoom configuration",
            )),
        }
    }

    fn change_sharing(
        principal_institution: &str,
        media_id: &str,
        ids: &[String],
    ) -> Result<MediaSharing, Status> {
        Ok(MediaSharing {
            institution_id: principal_institution.to_string(),
            media_id: required_id("media_id", media_id)?,
            section_ids: section_ids("section_ids", ids)?,
            now: Timestamp::now(),
        })
    }
}

#[tonic::async_trait]
impl SectionService for SectionApi {
    async fn sync_sections(
        &self,
        request: Request<Streaming<api::SyncSectionsRequest>>,
    ) -> Result<Response<api::SyncSectionsSummary>, Status> {
        self.sync_sections_from(request).await
    }

    async fn list_sections(
        &self,
        request: Request<api::ListSectionsRequest>,
    ) -> Result<Response<api::ListSectionsResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let page = page_query("page", body.page.as_ref())?;
        let page = self
            .context
            .store
            .list_sections(&institution_id, body.include_inactive, &page)
            .await?;
        Ok(Response::new(api::ListSectionsResponse {
            page: page_response(&page),
            sections: page.items.into_iter().map(convert::section).collect(),
        }))
    }

    async fn create_section_mapping(
        &self,
        request: Request<api::CreateSectionMappingRequest>,
    ) -> Result<Response<api::SectionMapping>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let matcher = matcher(body.matcher.as_ref())?;
        let section_ids = section_ids("section_ids", &body.section_ids)?;
        let configuration_id = self
            .mapping_configuration(&institution_id, &body.configuration_id)
            .await?;
        let mapping = self
            .context
            .store
            .create_section_mapping(NewSectionMapping {
                institution_id: institution_id.clone(),
                configuration_id,
                matcher,
                section_ids,
                now: Timestamp::now(),
            })
            .await?;
        tracing::info!(institution = %institution_id, mapping = %mapping.mapping_id,
            configuration = %mapping.configuration_id, sections = mapping.section_ids.len(),
            "section mapping created");
        Ok(Response::new(convert::section_mapping(mapping)))
    }

    async fn list_section_mappings(
        &self,
        request: Request<api::ListSectionMappingsRequest>,
    ) -> Result<Response<api::ListSectionMappingsResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let page = page_query("page", body.page.as_ref())?;
        let configuration = Some(body.configuration_id.trim()).filter(|s| !s.is_empty());
        let page = self
            .context
            .store
            .list_section_mappings(&institution_id, configuration, &page)
            .await?;
        Ok(Response::new(api::ListSectionMappingsResponse {
            page: page_response(&page),
            mappings: page
                .items
                .into_iter()
                .map(convert::section_mapping)
                .collect(),
        }))
    }

    async fn delete_section_mapping(
        &self,
        request: Request<api::DeleteSectionMappingRequest>,
    ) -> Result<Response<api::SectionMapping>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let mapping_id = required_id("mapping_id", &body.mapping_id)?;
        let mapping = self
            .context
            .store
            .delete_section_mapping(&institution_id, &mapping_id)
            .await?;
        tracing::info!(institution = %institution_id, mapping = %mapping_id, "section mapping deleted");
        Ok(Response::new(convert::section_mapping(mapping)))
    }

    async fn apply_section_mapping(
        &self,
        request: Request<api::ApplySectionMappingRequest>,
    ) -> Result<Response<api::ApplySectionMappingResponse>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let mapping_id = required_id("mapping_id", &body.mapping_id)?;
        let applied = self
            .context
            .store
            .apply_section_mapping(&institution_id, &mapping_id, Timestamp::now())
            .await?;
        tracing::info!(institution = %institution_id, mapping = %mapping_id,
            matched = applied.media_matched, shared = applied.media_shared,
            shares = applied.shares_added, "section mapping applied to existing media");
        Ok(Response::new(api::ApplySectionMappingResponse {
            media_matched: applied.media_matched,
            media_shared: applied.media_shared,
            shares_added: applied.shares_added,
        }))
    }

    async fn share_media(
        &self,
        request: Request<api::ShareMediaRequest>,
    ) -> Result<Response<api::Media>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let sharing = Self::change_sharing(&institution_id, &body.media_id, &body.section_ids)?;
        let media = self.context.store.share_media(sharing).await?;
        tracing::info!(institution = %institution_id, media = %media.media_id, "media shared");
        Ok(Response::new(convert::media(media)))
    }

    async fn unshare_media(
        &self,
        request: Request<api::UnshareMediaRequest>,
    ) -> Result<Response<api::Media>, Status> {
        let principal = self.context.auth.authenticate(&request).await?;
        let body = request.get_ref();
        let institution_id = principal.scope(&body.institution_id)?;
        let sharing = Self::change_sharing(&institution_id, &body.media_id, &body.section_ids)?;
        let media = self.context.store.unshare_media(sharing).await?;
        tracing::info!(institution = %institution_id, media = %media.media_id, "media unshared");
        Ok(Response::new(convert::media(media)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_ids_are_trimmed_deduplicated_and_bounded() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            section_ids("section_ids", &ids(&[" sec_b", "sec_a", "sec_b "])).expect("valid"),
            ids(&["sec_a", "sec_b"])
        );
        for (bad, message) in [
            (
                ids(&[]),
                "section_ids: between 1 and 20 sections required, got 0",
            ),
            (ids(&["sec_a", " "]), "section_ids[1]: required"),
            (
                (0..21).map(|i| format!("sec_{i}")).collect(),
                "section_ids: between 1 and 20 sections required, got 21",
            ),
        ] {
            let status = section_ids("section_ids", &bad).expect_err("invalid");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert_eq!(status.message(), message);
        }
    }

    #[test]
    fn a_matcher_needs_a_meeting_id_or_a_non_blank_prefix() {
        use api::create_section_mapping_request::Matcher;
        assert_eq!(
            matcher(Some(&Matcher::MeetingId(87565330005))).expect("valid"),
            SectionMatcher::MeetingId(87565330005)
        );
        assert_eq!(
            matcher(Some(&Matcher::TopicPrefix("  CHEM 101 ".into()))).expect("valid"),
            SectionMatcher::TopicPrefix("CHEM 101".into())
        );
        for (bad, message) in [
            (Some(Matcher::MeetingId(0)), "meeting_id: must not be 0"),
            (
                Some(Matcher::TopicPrefix("   ".into())),
                "topic_prefix: required",
            ),
            (
                None,
                "matcher: one of meeting_id or topic_prefix is required",
            ),
        ] {
            let status = matcher(bad.as_ref()).expect_err("invalid");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert_eq!(status.message(), message);
        }
    }

    #[test]
    fn a_record_needs_an_external_id_and_a_name() {
        let record = |external_id: &str, name: &str| api::SectionRecord {
            external_id: external_id.into(),
            name: name.into(),
        };
        assert_eq!(
            validate_record(3, &record(" CHEM101 ", " Chemistry ")).expect("valid"),
            SectionRecord {
                record_index: 3,
                external_id: "CHEM101".into(),
                name: "Chemistry".into()
            }
        );
        assert_eq!(
            validate_record(0, &record("", "x")).expect_err("invalid"),
            "external_id: required"
        );
        assert_eq!(
            validate_record(0, &record("x", "")).expect_err("invalid"),
            "name: required"
        );
        assert_eq!(
            validate_record(0, &record("x", &"n".repeat(201))).expect_err("invalid"),
            "name: longer than 200 characters"
        );
    }
}
