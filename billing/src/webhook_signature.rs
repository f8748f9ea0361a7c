//! The billing webhook's `Sluice-Signature` header (docs/protocol.md §5.7): parsing it and
//! verifying it against the raw request body. Pure: no clock (callers pass `now`), no IO.
//!
//! Format: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. Several `v1`
//! entries may be present and any may match; together with several configured secrets this is
//! how secrets rotate without downtime (the provider signs with old and new while both are
//! configured here). Elements with other keys (`v0`, a future `v2`) are ignored, so a provider
//! can add schemes without breaking this receiver.
//!
//! The timestamp is inside the signed text, so a captured request cannot be replayed with a
//! fresh `t`; the tolerance bounds how long the captured one stays usable, in both directions
//! (a clock far ahead would otherwise mint requests valid for a long time).

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header's name.
pub const SIGNATURE_HEADER: &str = "Sluice-Signature";
/// How far the signed timestamp may be from now, either way; exactly this far is accepted.
pub const TOLERANCE: Duration = Duration::from_secs(TOLERANCE_SECONDS as u64);
const TOLERANCE_SECONDS: i64 = 300;
/// Longest header accepted: bounds parsing work on hostile input.
const MAX_HEADER_LEN: usize = 4096;
/// Most `v1` entries accepted: each costs one comparison per secret.
const MAX_SIGNATURES: usize = 16;
/// Most digits in `t`: 18 always fit an `i64`.
const MAX_TIMESTAMP_DIGITS: usize = 18;
/// Length of a SHA-256 HMAC.
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A parsed `Sluice-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// `t`, unix seconds.
    pub timestamp: i64,
    /// `t` exactly as sent: the signed text uses it, not its numeric value re-printed.
    timestamp_text: String,
    /// Every `v1` entry, decoded.
    pub signatures: Vec<[u8; MAC_LEN]>,
}

/// Why a webhook request's signature was refused. Messages say what to check; none reveals
/// anything about the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Sluice-Signature` header.
    #[error("missing {SIGNATURE_HEADER} header")]
    Missing,
    /// The header is not `t=<unix>,v1=<hex>[,v1=<hex>…]`; the text says which part.
    #[error("malformed {SIGNATURE_HEADER} header: {0}")]
    Malformed(&'static str),
    /// No `v1` matches the body under any configured secret.
    #[error("{SIGNATURE_HEADER} does not match the body: check the webhook secret, and sign the raw body bytes as sent")]
    Mismatch,
    /// The signature is valid but its timestamp is older than the tolerance: a replay, or a
    /// slow clock at the sender.
    #[error("{SIGNATURE_HEADER} timestamp is {0} s old, more than the {TOLERANCE_SECONDS} s allowed: check the sender's clock")]
    Expired(i64),
    /// The signature is valid but its timestamp is further ahead than the tolerance.
    #[error("{SIGNATURE_HEADER} timestamp is {0} s in the future, more than the {TOLERANCE_SECONDS} s allowed: check the sender's clock")]
    Future(i64),
}

/// Parses a header value. Strict about the parts it uses (`t` once, `v1` as 64 hex digits),
/// lenient about unknown keys.
pub fn parse_header(value: &str) -> Result<SignatureHeader, SignatureError> {
    use SignatureError::Malformed;
    if value.len() > MAX_HEADER_LEN {
        return Err(Malformed("it is too long"));
    }
    let mut timestamp: Option<(i64, &str)> = None;
    let mut signatures = Vec::new();
    for element in value.split(',') {
        let (key, text) = element
            .split_once('=')
            .ok_or(Malformed("every element must be key=value"))?;
        match key.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(Malformed("`t` appears more than once"));
                }
                let text = text.trim();
                if text.is_empty()
                    || text.len() > MAX_TIMESTAMP_DIGITS
                    || !text.bytes().all(|byte| byte.is_ascii_digit())
                {
                    return Err(Malformed("`t` must be unix seconds"));
                }
                let seconds = text
                    .parse::<i64>()
                    .map_err(|_| Malformed("`t` must be unix seconds"))?;
                timestamp = Some((seconds, text));
            }
            "v1" => {
                if signatures.len() == MAX_SIGNATURES {
                    return Err(Malformed("too many `v1` signatures"));
                }
                let mut signature = [0u8; MAC_LEN];
                hex::decode_to_slice(text.trim(), &mut signature)
                    .map_err(|_| Malformed("`v1` must be 64 hex digits (HMAC-SHA256)"))?;
                signatures.push(signature);
            }
            _ => {}
        }
    }
    let (timestamp, timestamp_text) = timestamp.ok_or(Malformed("no `t=` timestamp"))?;
    if signatures.is_empty() {
        return Err(Malformed("no `v1=` signature"));
    }
    Ok(SignatureHeader {
        timestamp,
        timestamp_text: timestamp_text.to_owned(),
        signatures,
    })
}

/// Verifies a request: `header` is the `Sluice-Signature` value (if any), `body` the raw body
/// bytes exactly as received, `secrets` every currently valid secret (empty ones never match),
/// `now` unix seconds.
///
/// The signature is checked before the timestamp, so `Expired`/`Future` are only reported for
/// genuinely signed requests (a replay or a skewed clock), never for forgeries. Comparisons
/// are constant-time (`Mac::verify_slice`).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[impl AsRef<[u8]>],
    now: i64,
) -> Result<(), SignatureError> {
    let header = parse_header(header.ok_or(SignatureError::Missing)?)?;
    let matches = secrets
        .iter()
        .map(AsRef::as_ref)
        .filter(|secret| !secret.is_empty())
        .any(|secret| {
            // The body is hashed once per secret; each candidate is compared on a clone.
            let mac = signed_text_mac(secret, &header.timestamp_text, body);
            header
                .signatures
                .iter()
                .any(|signature| mac.clone().verify_slice(signature).is_ok())
        });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let age = now.saturating_sub(header.timestamp);
    if age > TOLERANCE_SECONDS {
        return Err(SignatureError::Expired(age));
    }
    if age < -TOLERANCE_SECONDS {
        return Err(SignatureError::Future(age.saturating_neg()));
    }
    Ok(())
}

/// The header value a sender computes for `body` at `timestamp` (for tests, tools and the
/// documentation's examples).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mac = signed_text_mac(secret, &timestamp.to_string(), body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// HMAC-SHA256 of `"<t>.<body>"` under `secret`, not yet finalised.
fn signed_text_mac(secret: &[u8], timestamp_text: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_700_000_000;
    const SECRET: &str = "whsec_current";
    const OLD_SECRET: &str = "whsec_previous";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"subscription.updated","account":"acme","plan":"pro","created":1700000000}"#;

    fn check(
        case: &str,
        header: Option<&str>,
        body: &[u8],
        secrets: &[&str],
        expected: Result<(), SignatureError>,
    ) {
        assert_eq!(verify(header, body, secrets, NOW), expected, "{case}");
    }

    fn signed(secret: &str, timestamp: i64) -> String {
        sign(secret.as_bytes(), timestamp, BODY)
    }

    #[test]
    fn signature_vectors() {
        use SignatureError::*;
        let valid = signed(SECRET, NOW);
        let hex = valid.split_once("v1=").unwrap().1.to_owned();
        // Flip the last hex digit of the signature.
        let mut tampered_signature = valid.clone();
        let last = tampered_signature.pop().unwrap();
        tampered_signature.push(if last == '0' { '1' } else { '0' });
        let malformed_v1 = Malformed("`v1` must be 64 hex digits (HMAC-SHA256)");
        let malformed_t = Malformed("`t` must be unix seconds");

        // Headers over `BODY`, verified with `SECRET` at `NOW`.
        let cases: Vec<(&str, Option<String>, Result<(), SignatureError>)> = vec![
            ("valid", Some(valid.clone()), Ok(())),
            (
                "tampered signature",
                Some(tampered_signature),
                Err(Mismatch),
            ),
            (
                "wrong secret",
                Some(signed("whsec_other", NOW)),
                Err(Mismatch),
            ),
            (
                "expired: 301 s old",
                Some(signed(SECRET, NOW - 301)),
                Err(Expired(301)),
            ),
            (
                "future: 301 s ahead",
                Some(signed(SECRET, NOW + 301)),
                Err(Future(301)),
            ),
            (
                "boundary: exactly 300 s old",
                Some(signed(SECRET, NOW - 300)),
                Ok(()),
            ),
            (
                "boundary: exactly 300 s ahead",
                Some(signed(SECRET, NOW + 300)),
                Ok(()),
            ),
            (
                "forged and expired: the forgery is reported",
                Some(signed("whsec_other", NOW - 1000)),
                Err(Mismatch),
            ),
            ("missing header", None, Err(Missing)),
            (
                "empty header",
                Some(String::new()),
                Err(Malformed("every element must be key=value")),
            ),
            (
                "no t",
                Some(format!("v1={hex}")),
                Err(Malformed("no `t=` timestamp")),
            ),
            (
                "no v1",
                Some(format!("t={NOW}")),
                Err(Malformed("no `v1=` signature")),
            ),
            (
                "only another scheme",
                Some(format!("t={NOW},v0={hex}")),
                Err(Malformed("no `v1=` signature")),
            ),
            (
                "non-hex v1",
                Some(format!("t={NOW},v1={}", "zz".repeat(32))),
                Err(malformed_v1.clone()),
            ),
            (
                "short v1",
                Some(format!("t={NOW},v1={}", &hex[..62])),
                Err(malformed_v1),
            ),
            (
                "duplicate t",
                Some(format!("t={NOW},t={NOW},v1={hex}")),
                Err(Malformed("`t` appears more than once")),
            ),
            (
                "non-numeric t",
                Some(format!("t=now,v1={hex}")),
                Err(malformed_t.clone()),
            ),
            (
                "negative t",
                Some(format!("t=-5,v1={hex}")),
                Err(malformed_t.clone()),
            ),
            (
                "huge t",
                Some(format!("t={},v1={hex}", "9".repeat(30))),
                Err(malformed_t),
            ),
            (
                "element without =",
                Some(format!("t={NOW},v1,{hex}")),
                Err(Malformed("every element must be key=value")),
            ),
            (
                "rotated: second v1 matches",
                Some(format!("{},v1={hex}", signed(OLD_SECRET, NOW))),
                Ok(()),
            ),
            (
                "unknown schemes are ignored",
                Some(format!("t={NOW},v0=abc,v1={hex},v2=xyz")),
                Ok(()),
            ),
            (
                "spaces around elements",
                Some(format!(" t = {NOW} , v1 = {hex} ")),
                Ok(()),
            ),
            (
                "upper-case hex",
                Some(format!("t={NOW},v1={}", hex.to_uppercase())),
                Ok(()),
            ),
            (
                "too many v1",
                Some(format!("t={NOW}{}", format!(",v1={hex}").repeat(17))),
                Err(Malformed("too many `v1` signatures")),
            ),
            (
                "too long",
                Some(format!("t={NOW},v1={hex},x={}", "a".repeat(5000))),
                Err(Malformed("it is too long")),
            ),
        ];
        for (case, header, expected) in cases {
            check(case, header.as_deref(), BODY, &[SECRET], expected);
        }

        // What varies besides the header: the body and the configured secrets.
        let mut tampered_body = BODY.to_vec();
        tampered_body[60] ^= 1;
        check(
            "tampered body",
            Some(&valid),
            &tampered_body,
            &[SECRET],
            Err(Mismatch),
        );
        check(
            "rotated: second secret matches",
            Some(&valid),
            BODY,
            &[OLD_SECRET, SECRET],
            Ok(()),
        );
        check(
            "no secret configured matches nothing",
            Some(&valid),
            BODY,
            &[],
            Err(Mismatch),
        );
        let empty_key = sign(b"", NOW, BODY);
        check(
            "an empty secret never matches",
            Some(&empty_key),
            BODY,
            &[""],
            Err(Mismatch),
        );
    }

    #[test]
    fn the_signed_timestamp_is_the_text_sent() {
        // `t=0…` with leading zeros is signed as written; re-printing it would break the MAC.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        let text = format!("0{NOW}");
        mac.update(format!("{text}.").as_bytes());
        mac.update(BODY);
        let header = format!("t={text},v1={}", hex::encode(mac.finalize().into_bytes()));
        check("leading zero", Some(&header), BODY, &[SECRET], Ok(()));
    }

    #[test]
    fn error_messages_say_what_to_check() {
        assert!(SignatureError::Expired(301).to_string().contains("clock"));
        assert!(SignatureError::Mismatch.to_string().contains("raw body"));
        assert!(SignatureError::Missing
            .to_string()
            .contains(SIGNATURE_HEADER));
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(value in ".{0,300}") {
            let _ = parse_header(&value);
        }

        #[test]
        fn the_parser_never_panics_on_near_misses(
            value in "(t|v1|v0| t|t )?=?[0-9a-fA-Fz -]{0,70}(,(t|v1|v0)=[0-9a-fA-F-]{0,70}){0,4}"
        ) {
            let _ = parse_header(&value);
        }

        #[test]
        fn verify_never_panics(value in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..64), now in any::<i64>()) {
            let _ = verify(Some(&value), &body, &[SECRET], now);
        }

        #[test]
        fn what_is_signed_verifies_and_any_body_change_does_not(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            timestamp in 0i64..4_000_000_000,
            flip in any::<prop::sample::Index>(),
        ) {
            let header = sign(&secret, timestamp, &body);
            prop_assert_eq!(verify(Some(&header), &body, &[&secret], timestamp), Ok(()));
            if !body.is_empty() {
                let mut changed = body.clone();
                changed[flip.index(body.len())] ^= 0x01;
                prop_assert_eq!(
                    verify(Some(&header), &changed, &[&secret], timestamp),
                    Err(SignatureError::Mismatch)
                );
            }
        }
    }
}
