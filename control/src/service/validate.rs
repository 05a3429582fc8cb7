//! Field checks shared by the handlers. Every message names the field.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tonic::Status;

use crate::api;
use crate::store::{Page, PageQuery};

/// A required, trimmed text field of 1 to `max_chars` characters.
pub(crate) fn required_text(field: &str, value: &str, max_chars: usize) -> Result<String, Status> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field}: required")));
    }
    optional_text(field, value, max_chars)
}

/// An optional, trimmed text field of at most `max_chars` characters without
/// control characters.
pub(crate) fn optional_text(field: &str, value: &str, max_chars: usize) -> Result<String, Status> {
    let value = value.trim();
    if value.chars().count() > max_chars {
        return Err(Status::invalid_argument(format!(
            "{field}: longer than {max_chars} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "{field}: contains control characters"
        )));
    }
    Ok(value.to_string())
}

/// An identifier field: required, and of a sane length and alphabet.
pub(crate) fn required_id(field: &str, value: &str) -> Result<String, Status> {
    let value = required_text(field, value, 200)?;
    Ok(value)
}

pub(crate) fn page_query(
    field: &str,
    page: Option<&api::PageRequest>,
) -> Result<PageQuery, Status> {
    let Some(page) = page else {
        return Ok(PageQuery::default());
    };
    let after = if page.page_token.is_empty() {
        None
    } else {
        let bytes = URL_SAFE_NO_PAD
            .decode(page.page_token.as_bytes())
            .map_err(|_| {
                Status::invalid_argument(format!("{field}.page_token: not a token from this API"))
            })?;
        Some(String::from_utf8(bytes).map_err(|_| {
            Status::invalid_argument(format!("{field}.page_token: not a token from this API"))
        })?)
    };
    Ok(PageQuery {
        after,
        size: page.page_size,
    })
}

pub(crate) fn page_response<T>(page: &Page<T>) -> Option<api::PageResponse> {
    Some(api::PageResponse {
        next_page_token: page
            .next_after
            .as_deref()
            .map(|after| URL_SAFE_NO_PAD.encode(after))
            .unwrap_or_default(),
    })
}
