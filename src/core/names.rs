//! Validation of the identifiers that arrive from events and configuration.

/// ECR repository name rule: `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`,
/// 2 to 256 characters.
pub fn is_valid_repository_name(name: &str) -> bool {
    if name.len() < 2 || name.len() > 256 {
        return false;
    }
    name.split('/').all(|component| {
        let mut prev_separator = true; // a component may not start with a separator
        for c in component.chars() {
            let separator = matches!(c, '.' | '_' | '-');
            if !(separator || c.is_ascii_lowercase() || c.is_ascii_digit()) {
                return false;
            }
            if separator && prev_separator {
                return false;
            }
            prev_separator = separator;
        }
        !component.is_empty() && !prev_separator
    })
}

/// `sha256:` + 64 lowercase hex, or `sha512:` + 128.
pub fn is_valid_digest(digest: &str) -> bool {
    let (algorithm, hex) = match digest.split_once(':') {
        Some(parts) => parts,
        None => return false,
    };
    let expected = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == expected && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Docker tag rule: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    tag.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in ["my-app", "team/app", "a1", "a.b_c-d/e", "x/y/z0"] {
            assert!(is_valid_repository_name(ok), "{ok}");
        }
        for bad in [
            "", "a", "My-App", "-app", "app-", "a//b", "a--b", "/app", "app/", "a b", "a:b",
        ] {
            assert!(!is_valid_repository_name(bad), "{bad}");
        }
    }

    #[test]
    fn digests() {
        assert!(is_valid_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_valid_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_valid_digest(&format!("sha256:{}", "a".repeat(63))));
        assert!(!is_valid_digest(&format!("md5:{}", "a".repeat(64))));
        assert!(!is_valid_digest("latest"));
    }

    #[test]
    fn tags() {
        assert!(is_valid_tag("cache-main"));
        assert!(is_valid_tag("_x"));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag("a/b"));
        assert!(!is_valid_tag(&"a".repeat(129)));
    }
}
