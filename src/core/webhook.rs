//! GitHub webhook deliveries: signature check and payload decoding. Pure functions.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header (SHA-1 X-Hub-Signature alone is not accepted)")]
    Missing,
    #[error("X-Hub-Signature-256 is not of the form sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body")]
    Mismatch,
}

/// Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>` over the exact raw body,
/// comparing in constant time.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_part = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// `sha256=<hex>` signature of `body`, as GitHub sends it.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("unsupported content type {0:?}; configure the webhook with application/json or application/x-www-form-urlencoded")]
    UnsupportedContentType(String),
    #[error("form-encoded delivery has no payload field")]
    MissingPayloadField,
    #[error("payload is not a JSON object: {0}")]
    NotJson(String),
}

/// The payload JSON of a delivery: the body itself (`application/json`) or its `payload` form
/// field (`application/x-www-form-urlencoded`). A missing content type is read as JSON.
pub fn decode_payload(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<serde_json::Value, PayloadError> {
    let media_type = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "application/json".to_owned());
    let json_bytes: Vec<u8> = match media_type.as_str() {
        "application/json" => body.to_vec(),
        "application/x-www-form-urlencoded" => form_urlencoded::parse(body)
            .find(|(key, _)| key == "payload")
            .map(|(_, value)| value.into_owned().into_bytes())
            .ok_or(PayloadError::MissingPayloadField)?,
        other => return Err(PayloadError::UnsupportedContentType(other.to_owned())),
    };
    let value: serde_json::Value =
        serde_json::from_slice(&json_bytes).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(PayloadError::NotJson("expected an object".into()));
    }
    Ok(value)
}

/// 100-nanosecond intervals from the Gregorian calendar's start (1582-10-15) to the Unix epoch.
const UUID_EPOCH_OFFSET: i64 = 0x01B2_1DD2_1381_4000;

/// When GitHub created the event a delivery carries, from its `X-GitHub-Delivery` GUID, in
/// seconds since the epoch, if the GUID is a time-based (version 1) UUID. Every real delivery
/// GUID seen so far is one, and a redelivery keeps the original GUID (GitHub's docs: "the
/// X-GitHub-Delivery header will be the same as in the original delivery"), so this is the
/// only time a redelivered deletion carries that says when the branch went. Undocumented as a
/// format and outside the signature: used only to move an event's time earlier (a forged GUID
/// can only make the pruner keep more), and anything else gives None.
pub fn delivery_created_at(guid: &str) -> Option<i64> {
    let parts: Vec<&str> = guid.trim().split('-').collect();
    let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    if lengths != [8, 4, 4, 4, 12]
        || !parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return None;
    }
    let time_low = u64::from_str_radix(parts[0], 16).ok()?;
    let time_mid = u64::from_str_radix(parts[1], 16).ok()?;
    let time_hi_version = u64::from_str_radix(parts[2], 16).ok()?;
    let variant = u8::from_str_radix(&parts[3][..1], 16).ok()?;
    // Version 1, RFC 4122 variant (10xx).
    if time_hi_version >> 12 != 1 || variant & 0b1100 != 0b1000 {
        return None;
    }
    let ticks = ((time_hi_version & 0x0FFF) << 48) | (time_mid << 32) | time_low;
    let secs = (ticks as i64 - UUID_EPOCH_OFFSET).div_euclid(10_000_000);
    Some(secs)
}

/// A version 1 GUID created at `secs` (for tests and samples: a delivery made now).
pub fn delivery_guid_at(secs: i64, node: u64) -> String {
    let ticks = (secs * 10_000_000 + UUID_EPOCH_OFFSET) as u64;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        ticks & 0xFFFF_FFFF,
        (ticks >> 32) & 0xFFFF,
        0x1000 | ((ticks >> 48) & 0x0FFF),
        0x8000 | (node >> 48 & 0x3FFF),
        node & 0xFFFF_FFFF_FFFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const GITHUB_VECTOR: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_test_vector() {
        assert_eq!(sign(SECRET, BODY), GITHUB_VECTOR);
        assert_eq!(verify_signature(SECRET, BODY, Some(GITHUB_VECTOR)), Ok(()));
        assert_eq!(
            verify_signature(
                SECRET,
                BODY,
                Some(&GITHUB_VECTOR.to_uppercase().replace("SHA256=", "sha256="))
            ),
            Ok(()),
            "hex digits are case-insensitive"
        );
    }

    #[test]
    fn forgeries_are_rejected() {
        assert_eq!(
            verify_signature(SECRET, BODY, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(
                SECRET,
                BODY,
                Some("sha1=0123456789abcdef0123456789abcdef01234567")
            ),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(SECRET, BODY, Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(SECRET, BODY, Some(&format!("sha256={}", "g".repeat(64)))),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(b"wrong secret", BODY, Some(GITHUB_VECTOR)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, b"Hello, World?", Some(GITHUB_VECTOR)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, BODY, Some("")),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn payloads_json_and_form() {
        let json = br#"{"ref":"feature/x","ref_type":"branch"}"#;
        assert_eq!(
            decode_payload(Some("application/json"), json).unwrap()["ref"],
            "feature/x"
        );
        assert_eq!(decode_payload(None, json).unwrap()["ref_type"], "branch");
        let form = format!(
            "payload={}",
            form_urlencoded::byte_serialize(json).collect::<String>()
        );
        assert_eq!(
            decode_payload(
                Some("application/x-www-form-urlencoded; charset=utf-8"),
                form.as_bytes()
            )
            .unwrap()["ref"],
            "feature/x"
        );
        assert_eq!(
            decode_payload(Some("application/x-www-form-urlencoded"), b"other=1"),
            Err(PayloadError::MissingPayloadField)
        );
        assert!(matches!(
            decode_payload(Some("text/plain"), json),
            Err(PayloadError::UnsupportedContentType(_))
        ));
        assert!(matches!(
            decode_payload(Some("application/json"), b"{nope"),
            Err(PayloadError::NotJson(_))
        ));
        assert!(matches!(
            decode_payload(Some("application/json"), b"[1]"),
            Err(PayloadError::NotJson(_))
        ));
    }

    #[test]
    fn a_delivery_guid_says_when_github_created_the_event() {
        // GitHub's documented example header: 2014-04-25 12:52:24 UTC.
        let at = delivery_created_at("72d3162e-cc78-11e3-81ab-4c9367dc0958").unwrap();
        assert_eq!(
            crate::core::time::format_rfc3339(at),
            "2014-04-25T12:52:24Z"
        );
        // The time fields of a 2022 capture (pangeo-forge docs; its check_suite.created_at is
        // 20:59:56Z), with the node part made up.
        let at = delivery_created_at("dfdabc30-24b8-11ed-8d40-26ec0b1b7b4a").unwrap();
        assert_eq!(
            crate::core::time::format_rfc3339(at),
            "2022-08-25T20:59:56Z"
        );
        // Round trip.
        let guid = delivery_guid_at(1_795_774_530, 0xabc);
        assert_eq!(delivery_created_at(&guid), Some(1_795_774_530));
        // Not version 1, not a GUID, wrong variant: no time.
        assert_eq!(
            delivery_created_at("1c27c573-3889-4501-9a77-8d5b1e2a3c4d"),
            None
        );
        assert_eq!(delivery_created_at("-"), None);
        assert_eq!(
            delivery_created_at("72d3162e-cc78-11e3-c1ab-4c9367dc0958"),
            None
        );
        assert_eq!(
            delivery_created_at("72d3162e-cc78-11e3-81ab-4c9367dc095"),
            None
        );
        assert_eq!(
            delivery_created_at("72d3162g-cc78-11e3-81ab-4c9367dc0958"),
            None
        );
    }
}
