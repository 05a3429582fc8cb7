//! Email addresses as Ferry compares them: trimmed and lowercased, so that
//! `Elisa@Example.edu ` and `elisa@example.edu` are one address.

/// Trims and lowercases an address. Every stored and looked-up email passes
/// through here, so comparisons are plain string equality (and indexable).
pub fn normalize(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks the shape of a normalised address: one `@`, a non-empty local part,
/// a domain of dot-separated labels, no spaces or control characters, and at
/// most 254 characters. This is deliberately not a full RFC 5322 parser:
/// directory data and Zoom hosts use plain addresses.
pub fn validate(email: &str) -> Result<(), &'static str> {
    if email.is_empty() {
        return Err("is empty");
    }
    if email.len() > 254 {
        return Err("is longer than 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err("has no @");
    };
    if local.is_empty() || local.len() > 64 {
        return Err("has an empty or over-long local part");
    }
    if domain.contains('@') {
        return Err("has more than one @");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|label| label.is_empty() || label.len() > 63)
    {
        return Err("has an invalid domain");
    }
    if labels
        .iter()
        .any(|label| label.starts_with('-') || label.ends_with('-'))
    {
        return Err("has an invalid domain");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(normalize("  Elisa@Example.EDU \t"), "elisa@example.edu");
    }

    #[test]
    fn accepts_plain_addresses() {
        for ok in ["a@b.co", "first.last+tag@sub.example.edu", "x_y@x-y.org"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@example.edu",
            "a@",
            "a@b",
            "a@@b.co",
            "a@b..co",
            "a b@c.co",
            "a@-b.co",
            "a@b.co@d.co",
        ] {
            assert!(validate(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(validate(&format!("{}@b.co", "a".repeat(65))).is_err());
    }
}
