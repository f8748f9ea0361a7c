//! `billing::stream_jwt`: a valid round trip, the exact leeway boundaries, and the JWT
//! negative matrix (`alg: none`, HS/RS key confusion, other HMAC algorithms, stripped or wrong
//! signatures, missing or expired `exp`, missing or future `nbf`, wrong or missing `aud`/`iss`,
//! any `kid`, oversized tokens), every refusal the same error value and text
//! (docs/protocol.md §6.5).

use billing::stream_jwt::{self, JwtError, StreamClaims, AUDIENCE, ISSUER, LEEWAY_SECONDS};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &[u8] = b"test-secret-test-secret-test-sec";
const NOW: u64 = 1_700_000_000;

/// TEST-ONLY RSA key pair (2048 bits, made with `openssl genpkey` for these tests). It guards
/// nothing; it exists so an RS256-signed token can be offered to an HS256 verifier.
const TEST_ONLY_RSA_PRIVATE_KEY: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCVdxkvaJ1qzW2H\n\
CqolhR6lMu64S/GuUVMniH03g01w24sUVi+Ivt6kbgaVJND1/CWp5R4+9Lsib+D+\n\
5q3UhEbyktP97j2TRbeOHSqe7NGzyLQYZkcEQegavABK/F86Y/lHAKmmw21g3xC8\n\
bvUrp7/0VxHaETFq4OrCmP+y4KZcJOt0/s+yqs4UsjsmG8+fBL5ZmFjMtibY1IEY\n\
1E6zhAGizXF0t0uc0++f+sLa5JYL1ehIrbPZmfDnh3SSU562m0mFJt/2k98GtWS/\n\
o/HMkr0lMLf1r8KivDGhWW7pqipM3YeXNQh3OgjPbjszGZzgL0rB8z43+zTMI71J\n\
KtFBeXgfAgMBAAECggEAA4fIpIIIFdm8WJA77J70VlqZoOjKUJ/DIw/qRUFott24\n\
r0ZJ4SUBBUlEBonUFbta+GRdDoehU/LokZzJRlfJhTlKoJjcA3qGF2lA9HgLi/+V\n\
oW3pB4S3AsqmBx9m8G4kGTU+zJ2ZG8ypDIpiaCGSOydDWK9HR4sAgJA0mfkMdOix\n\
GEvHeoDUZ14N6slv7G9l2vFCrENT0EeY6qZW7SBva0S06EEbYCgAxylDXwRfwwgl\n\
jFkUxpUPW0mPU9KikbQ9V51ZtB3A11YtC2k3xK5a68X9R+CrucWxN3LhlVw1bG4P\n\
LcTI3XQ5zXlaj8rMZVrVg+Yvk1By6mtUj3UPh8RiQQKBgQDJxcJbwm4ETrd+CElu\n\
uve81GqJ9C7OUBVrYNiMgbj0Rb4Te6fV5I3knU7xBWsy+ls96Pwj64AErhPUQikO\n\
PAPIsKxfg39FwZwZb42n8zKSp674+OdKOPkIy5E9ikdBNihDACTi+RPpwiOVVziW\n\
Mr1k8XeZKcQthjpg4yzvI9iYZwKBgQC9ooXqoXfXodoc5QooWpI/+b+7aRDsxlz8\n\
NcqMCjV2l0BJ+BDYEwBuX5rdCHOiq5+dD+EBGh47i/zJGO/0+Hk7ZZAc+3Bjgh6F\n\
7Hz03P5UeWMkjKrEvjMeuVJGgCo5BkGSA44OobB/WYDihvt0dgGhOl9JhUfbzSW5\n\
3sclc6MviQKBgQCq1k8+o/vEl+WSx29tWs6hSfS+w0nSE0pfdUtEhB1WbaqHEn7D\n\
glWFiI+rUJw4OHOCkr7Rpvbof394i1/5lmTZyoTYBh1/sXL6slHtLuPV+jYSxaQH\n\
Wv+4K6vYwDiehT1HpVqV9rCejmrUaloWCfYD/tL1ksBwjyLkn9SO0fn05wKBgGoQ\n\
7TY++fjx3j0rHnNTtVlzJ3p7WawVhwzKSW/qhdy+3IaC6Wjxt9wEPWpDv+nMdIo0\n\
x3UGVsKXmdwgxpYOJEDEncaYHFSMAuaFT57lvJsjCgD3bMx+VblpjktAhF1A0owI\n\
0Pv+E+om9Z++QAbzuhWjwIgus/KM2/0KTfj0pOGBAoGAIp1H+VygldAda51ZHXTf\n\
YwJqw8abC/jN2yFh/emnOAIlmmuSCywfEgF1xnFxYUoMbrdXMZ/NPtI89hQYPFA5\n\
Q3xzF28Y95URmHP2zU2E8+7JfHWuyUWDyeimgZ5l8C0Pp9B7sGMFh5BeqxHbzRzr\n\
+nSaSRsjPAOBQSEzsqomEvo=\n\
-----END PRIVATE KEY-----\n\
";
/// The public half of [`TEST_ONLY_RSA_PRIVATE_KEY`] (TEST-ONLY).
const TEST_ONLY_RSA_PUBLIC_KEY: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlXcZL2idas1thwqqJYUe\n\
pTLuuEvxrlFTJ4h9N4NNcNuLFFYviL7epG4GlSTQ9fwlqeUePvS7Im/g/uat1IRG\n\
8pLT/e49k0W3jh0qnuzRs8i0GGZHBEHoGrwASvxfOmP5RwCppsNtYN8QvG71K6e/\n\
9FcR2hExauDqwpj/suCmXCTrdP7PsqrOFLI7JhvPnwS+WZhYzLYm2NSBGNROs4QB\n\
os1xdLdLnNPvn/rC2uSWC9XoSK2z2Znw54d0klOetptJhSbf9pPfBrVkv6PxzJK9\n\
JTC39a/CorwxoVlu6aoqTN2HlzUIdzoIz247Mxmc4C9KwfM+N/s0zCO9SSrRQXl4\n\
HwIDAQAB\n\
-----END PUBLIC KEY-----\n\
";

/// Claims a valid token issued at [`NOW`] carries, as JSON to edit.
fn valid_claims() -> Value {
    json!({
        "sub": "42",
        "acct": "acme",
        "aud": AUDIENCE,
        "iss": ISSUER,
        "exp": NOW + 300,
        "nbf": NOW,
        "iat": NOW,
        "jti": "00112233445566778899aabbccddeeff",
    })
}

/// `valid_claims()` with `changes` applied (`null` removes a claim).
fn claims_with(changes: Value) -> Value {
    let mut claims = valid_claims();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign(
        Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
}

/// Unpadded base64url, to hand-craft tokens `jsonwebtoken` refuses to make.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, byte)| n | u32::from(*byte) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// `header.payload.signature` from JSON parts.
fn craft(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes())
    )
}

#[test]
fn base64url_helper_matches_known_vectors() {
    assert_eq!(base64url(b""), "");
    assert_eq!(base64url(b"f"), "Zg");
    assert_eq!(base64url(b"fo"), "Zm8");
    assert_eq!(base64url(b"foo"), "Zm9v");
    assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
}

#[test]
fn issue_then_verify_round_trips() {
    let token = stream_jwt::issue(SECRET, 42, "acme", NOW);
    let claims = stream_jwt::verify(SECRET, &token, NOW).unwrap();
    assert_eq!(claims.sub, "42");
    assert_eq!(claims.account_id(), Some(42));
    assert_eq!(claims.acct, "acme");
    assert_eq!(claims.aud, "sluice-stream");
    assert_eq!(claims.iss, "sluice");
    assert_eq!((claims.iat, claims.nbf, claims.exp), (NOW, NOW, NOW + 300));
    assert_eq!(claims.jti.len(), 32);
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.kid, None);
    // Every token is unique (jti).
    let again = stream_jwt::issue(SECRET, 42, "acme", NOW);
    assert_ne!(
        stream_jwt::verify(SECRET, &again, NOW).unwrap().jti,
        claims.jti
    );
    // A hand-made token with the same claims verifies too (the test helpers are sound).
    let made: StreamClaims = stream_jwt::verify(SECRET, &hs256(&valid_claims()), NOW).unwrap();
    assert_eq!(made.acct, "acme");
}

/// `exp + 30 < now` is expired; `nbf > now + 30` is not yet valid. Pinned to the second.
#[test]
fn leeway_boundaries_are_exact() {
    assert_eq!(LEEWAY_SECONDS, 30);
    let cases = [
        // (exp, nbf, accepted)
        (NOW, NOW - 300, true),
        (NOW - 30, NOW - 300, true),
        (NOW - 31, NOW - 300, false),
        (NOW + 300, NOW + 30, true),
        (NOW + 300, NOW + 31, false),
    ];
    for (exp, nbf, accepted) in cases {
        let token = hs256(&claims_with(json!({"exp": exp, "nbf": nbf})));
        let result = stream_jwt::verify(SECRET, &token, NOW);
        assert_eq!(result.is_ok(), accepted, "exp={exp} nbf={nbf}: {result:?}");
    }
    // The token `issue` makes is valid from 30 s before it was issued until 30 s past expiry.
    let token = stream_jwt::issue(SECRET, 42, "acme", NOW);
    assert!(stream_jwt::verify(SECRET, &token, NOW - 30).is_ok());
    assert!(stream_jwt::verify(SECRET, &token, NOW - 31).is_err());
    assert!(stream_jwt::verify(SECRET, &token, NOW + 330).is_ok());
    assert!(stream_jwt::verify(SECRET, &token, NOW + 331).is_err());
}

#[test]
fn negative_matrix_gives_one_error() {
    let valid = hs256(&valid_claims());
    let (valid_head, valid_rest) = valid.split_once('.').unwrap();
    let valid_payload = valid_rest.split_once('.').unwrap().0;
    let rsa_private = EncodingKey::from_rsa_pem(TEST_ONLY_RSA_PRIVATE_KEY.as_bytes()).unwrap();
    let mut with_kid = Header::new(Algorithm::HS256);
    with_kid.kid = Some("key-1".into());

    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            craft(&json!({"alg": "none", "typ": "JWT"}), &valid_claims(), ""),
        ),
        (
            "alg None",
            craft(&json!({"alg": "None", "typ": "JWT"}), &valid_claims(), ""),
        ),
        (
            "RS256 signed with an RSA private key",
            sign(Header::new(Algorithm::RS256), &valid_claims(), &rsa_private),
        ),
        (
            "HS256 signed with the RSA public key as the secret",
            sign(
                Header::new(Algorithm::HS256),
                &valid_claims(),
                &EncodingKey::from_secret(TEST_ONLY_RSA_PUBLIC_KEY.as_bytes()),
            ),
        ),
        (
            "HS512 with the right secret",
            sign(
                Header::new(Algorithm::HS512),
                &valid_claims(),
                &EncodingKey::from_secret(SECRET),
            ),
        ),
        (
            "HS384 with the right secret",
            sign(
                Header::new(Algorithm::HS384),
                &valid_claims(),
                &EncodingKey::from_secret(SECRET),
            ),
        ),
        (
            "stripped signature",
            format!("{valid_head}.{valid_payload}."),
        ),
        ("no signature part", format!("{valid_head}.{valid_payload}")),
        (
            "wrong secret",
            sign(
                Header::new(Algorithm::HS256),
                &valid_claims(),
                &EncodingKey::from_secret(b"another-secret-another-secret-an"),
            ),
        ),
        (
            "payload swapped under a valid signature",
            format!(
                "{valid_head}.{}.{}",
                base64url(claims_with(json!({"acct": "evil"})).to_string().as_bytes()),
                valid.rsplit_once('.').unwrap().1
            ),
        ),
        ("missing exp", hs256(&claims_with(json!({"exp": null})))),
        (
            "expired beyond the leeway",
            hs256(&claims_with(json!({"exp": NOW - LEEWAY_SECONDS - 1}))),
        ),
        (
            "exp not a number",
            hs256(&claims_with(json!({"exp": "soon"}))),
        ),
        ("missing nbf", hs256(&claims_with(json!({"nbf": null})))),
        (
            "nbf in the future beyond the leeway",
            hs256(&claims_with(json!({"nbf": NOW + LEEWAY_SECONDS + 1}))),
        ),
        (
            "wrong aud",
            hs256(&claims_with(json!({"aud": "sluice-admin"}))),
        ),
        ("missing aud", hs256(&claims_with(json!({"aud": null})))),
        ("wrong iss", hs256(&claims_with(json!({"iss": "evil"})))),
        ("missing iss", hs256(&claims_with(json!({"iss": null})))),
        (
            "unknown kid",
            sign(with_kid, &valid_claims(), &EncodingKey::from_secret(SECRET)),
        ),
        (
            "oversized but correctly signed",
            hs256(&claims_with(json!({"acct": "a".repeat(4096)}))),
        ),
        ("oversized garbage", "a".repeat(4097)),
        ("empty", String::new()),
        ("not a JWT", "slc_notajwt".into()),
    ];
    let expected = JwtError.to_string();
    for (name, token) in &cases {
        let result = stream_jwt::verify(SECRET, token, NOW);
        assert_eq!(result, Err(JwtError), "{name}");
        assert_eq!(result.unwrap_err().to_string(), expected, "{name}");
    }
    assert_eq!(expected, "invalid or expired stream token");
}
