//! API tokens: their text format, generation, checksum and stored hash, and scopes. Pure, no IO.
//!
//! A token is `slc_` + 30 random base62 characters + a 6-character base62 CRC32 of those 30
//! characters (40 characters in all), the shape GitHub uses for its tokens:
//!
//! - the recognisable prefix lets secret scanners and humans spot a leaked Sluice token;
//! - 30 characters from a 62-letter alphabet carry 30 × log2(62) ≈ 178 bits of entropy (well
//!   above the 128 bits a bearer secret needs; docs/protocol.md §6.2), drawn from the operating
//!   system's CSPRNG;
//! - the checksum lets a client reject a typo offline and lets the server refuse garbage
//!   without a database query (so a flood of made-up tokens cannot load the database).
//!
//! Only the SHA-256 of a token is stored. A slow password hash (argon2, bcrypt) exists to make
//! guessing low-entropy human passwords expensive; a 178-bit random secret cannot be guessed
//! whatever the hash costs, so a fast hash is as safe here and keeps every authentication cheap.

use std::fmt;
use std::str::FromStr;

use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::Rng;
use sha2::{Digest, Sha256};

/// The prefix every Sluice API token starts with.
pub const TOKEN_PREFIX: &str = "slc_";
/// Number of random base62 characters after the prefix.
const RANDOM_LEN: usize = 30;
/// Number of base62 characters of the checksum: 62^6 ≈ 5.7e10 > 2^32, so any CRC32 fits.
const CHECKSUM_LEN: usize = 6;
/// Total length of a well-formed token.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

/// The base62 alphabet, in ASCII order (digits, upper case, lower case).
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A plaintext API token.
///
/// `Debug` and `Display` never print the secret (they show `slc_…redacted`), so a token that
/// ends up in a log line or an error message by accident does not leak; [`ApiToken::expose`]
/// returns it for the one place that must show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// A new random token.
    pub fn generate() -> ApiToken {
        let random = random_base62(RANDOM_LEN);
        let checksum = checksum(&random);
        ApiToken(format!("{TOKEN_PREFIX}{random}{checksum}"))
    }

    /// Checks the format and the checksum of a presented token.
    ///
    /// Surrounding whitespace is ignored: tokens are pasted from terminals, files and
    /// environment variables that often carry a trailing newline.
    pub fn parse(text: &str) -> Result<ApiToken, TokenFormatError> {
        let text = text.trim();
        let body = text
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenFormatError::Prefix)?;
        if text.len() != TOKEN_LEN {
            return Err(TokenFormatError::Length {
                found: text.chars().count(),
            });
        }
        // Length is checked in bytes above; a non-ASCII character fails here before any slicing
        // could land inside a multi-byte character.
        if let Some(position) = body.bytes().position(|byte| !byte.is_ascii_alphanumeric()) {
            return Err(TokenFormatError::Character {
                position: TOKEN_PREFIX.len() + position,
            });
        }
        let (random, presented_checksum) = body.split_at(RANDOM_LEN);
        // Compare the encoded text, not decoded numbers: every different checksum text is then a
        // mismatch, so a typo in the checksum itself is caught as surely as one in the body.
        if checksum(random) != presented_checksum {
            return Err(TokenFormatError::Checksum);
        }
        Ok(ApiToken(text.to_owned()))
    }

    /// The plaintext, for the one place that shows it to its owner (or sends it to the server).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Hex SHA-256 of the token: what the database stores and looks tokens up by.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({TOKEN_PREFIX}…redacted)")
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}…redacted")
    }
}

impl FromStr for ApiToken {
    type Err = TokenFormatError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ApiToken::parse(text)
    }
}

/// Why a text is not a well-formed token. Messages never include the text itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    /// The text does not start with `slc_`.
    #[error("not a Sluice API token: it must start with `slc_`")]
    Prefix,
    /// The text has the wrong length.
    #[error("malformed API token: it has {found} characters, expected 40")]
    Length {
        /// Characters found.
        found: usize,
    },
    /// A character outside `[0-9A-Za-z]` after the prefix.
    #[error("malformed API token: invalid character at position {position}")]
    Character {
        /// Zero-based position in the token.
        position: usize,
    },
    /// The checksum does not match: a typo or a truncated copy.
    #[error("malformed API token: checksum mismatch (a typo or an incomplete copy?)")]
    Checksum,
}

/// What a token may do. Hierarchical: `admin` ⊇ `write` ⊇ `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Stream indicators.
    Read,
    /// Stream and publish indicators.
    Write,
    /// Everything, including administration.
    Admin,
}

impl Scope {
    /// Every scope, weakest first.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// Whether a token of this scope may do what needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        // The derived order is the hierarchy: Read < Write < Admin.
        self >= needed
    }

    /// The scope's name as stored and shown: `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope name that is not `read`, `write` or `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope `{0}`: expected read, write or admin")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lowered = text.trim().to_ascii_lowercase();
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == lowered)
            .ok_or_else(|| UnknownScope(text.to_owned()))
    }
}

/// `len` uniformly random base62 characters from the operating system's CSPRNG.
pub(crate) fn random_base62(len: usize) -> String {
    // `Alphanumeric` samples [0-9A-Za-z] uniformly (by rejection, so no modulo bias).
    (0..len)
        .map(|_| char::from(OsRng.sample(Alphanumeric)))
        .collect()
}

/// The 6-character base62 CRC32 of a token's random part.
fn checksum(random: &str) -> String {
    encode_base62(crc32fast::hash(random.as_bytes()), CHECKSUM_LEN)
}

/// `value` in base62, left-padded with `0` to `width` characters.
///
/// Written here rather than taken from a crate: it is five lines, its output is part of the
/// token format (so it must never change under us with a dependency update), and base62 crates
/// disagree on the alphabet order.
fn encode_base62(mut value: u32, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    debug_assert_eq!(value, 0, "base62 width too small for the value");
    String::from_utf8(digits).expect("base62 digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_have_the_documented_format() {
        for _ in 0..100 {
            let token = ApiToken::generate();
            let text = token.expose();
            assert_eq!(text.len(), 40);
            assert!(text.starts_with("slc_"));
            assert!(text[4..].bytes().all(|byte| byte.is_ascii_alphanumeric()));
            assert_eq!(ApiToken::parse(text), Ok(token.clone()));
        }
        assert_ne!(ApiToken::generate(), ApiToken::generate());
    }

    #[test]
    fn parse_rejects_each_kind_of_garbage() {
        let token = ApiToken::generate();
        let text = token.expose();
        assert_eq!(ApiToken::parse(""), Err(TokenFormatError::Prefix));
        assert_eq!(ApiToken::parse(&text[4..]), Err(TokenFormatError::Prefix));
        assert_eq!(
            ApiToken::parse(&format!("SLC_{}", &text[4..])),
            Err(TokenFormatError::Prefix)
        );
        assert_eq!(
            ApiToken::parse(&text[..39]),
            Err(TokenFormatError::Length { found: 39 })
        );
        assert_eq!(
            ApiToken::parse(&format!("{text}a")),
            Err(TokenFormatError::Length { found: 41 })
        );
        let with_dash = format!("{}-{}", &text[..10], &text[11..]);
        assert_eq!(
            ApiToken::parse(&with_dash),
            Err(TokenFormatError::Character { position: 10 })
        );
        // A multi-byte character of the right byte length must not panic on slicing.
        let with_unicode = format!("{}é{}", &text[..10], &text[12..]);
        assert!(matches!(
            ApiToken::parse(&with_unicode),
            Err(TokenFormatError::Character { .. })
        ));
        assert_eq!(
            ApiToken::parse(&format!("slc_{}", "0".repeat(36))),
            Err(TokenFormatError::Checksum)
        );
    }

    #[test]
    fn parse_ignores_surrounding_whitespace() {
        let token = ApiToken::generate();
        assert_eq!(
            ApiToken::parse(&format!("  {}\n", token.expose())),
            Ok(token)
        );
    }

    #[test]
    fn debug_and_display_do_not_leak_the_secret() {
        let token = ApiToken::generate();
        let secret = &token.expose()[4..];
        for shown in [
            format!("{token:?}"),
            format!("{token:#?}"),
            format!("{token}"),
            format!("{:?}", Some(&token)),
        ] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(!shown.contains(&secret[..8]), "{shown}");
        }
        assert_eq!(format!("{token:?}"), "ApiToken(slc_…redacted)");
    }

    #[test]
    fn errors_do_not_leak_the_presented_text() {
        let token = ApiToken::generate();
        // One character changed (to another one: a generated token may already have an `x`).
        let changed = if &token.expose()[20..21] == "x" {
            "y"
        } else {
            "x"
        };
        let typo = format!(
            "{}{changed}{}",
            &token.expose()[..20],
            &token.expose()[21..]
        );
        for bad in [typo.clone(), typo[..30].to_owned(), format!("{typo}!")] {
            let message = ApiToken::parse(&bad).unwrap_err().to_string();
            assert!(!message.contains(&bad[4..14]), "{message}");
        }
    }

    #[test]
    fn hash_is_hex_sha256_of_the_whole_token() {
        let token = ApiToken::generate();
        let hash = token.hash();
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_eq!(hash, hex::encode(Sha256::digest(token.expose())));
        assert!(!hash.contains(&token.expose()[4..]));
    }

    #[test]
    fn base62_encodes_known_values() {
        assert_eq!(encode_base62(0, 6), "000000");
        assert_eq!(encode_base62(61, 6), "00000z");
        assert_eq!(encode_base62(62, 6), "000010");
        assert_eq!(encode_base62(u32::MAX, 6), "4gfFC3");
    }

    #[test]
    fn scopes_are_hierarchical() {
        use Scope::*;
        let expected = [
            (Read, Read, true),
            (Read, Write, false),
            (Read, Admin, false),
            (Write, Read, true),
            (Write, Write, true),
            (Write, Admin, false),
            (Admin, Read, true),
            (Admin, Write, true),
            (Admin, Admin, true),
        ];
        for (held, needed, allowed) in expected {
            assert_eq!(held.allows(needed), allowed, "{held} allows {needed}");
        }
    }

    #[test]
    fn scopes_round_trip_through_text() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert_eq!(" ADMIN ".parse::<Scope>(), Ok(Scope::Admin));
        assert_eq!("owner".parse::<Scope>(), Err(UnknownScope("owner".into())));
    }

    fn base62_char() -> impl Strategy<Value = u8> {
        proptest::sample::select(BASE62.to_vec())
    }

    proptest! {
        /// Any single-character substitution anywhere in a token (prefix, body or checksum) is
        /// rejected: CRC32 detects every error burst up to 32 bits, so one changed byte of the
        /// body always changes the checksum; a changed checksum character never matches.
        #[test]
        fn every_single_character_typo_is_detected(
            position in 0..TOKEN_LEN,
            replacement in base62_char(),
        ) {
            let token = ApiToken::generate();
            let mut bytes = token.expose().as_bytes().to_vec();
            prop_assume!(bytes[position] != replacement);
            bytes[position] = replacement;
            let typo = String::from_utf8(bytes).unwrap();
            prop_assert!(ApiToken::parse(&typo).is_err());
        }

        /// Swapping two adjacent different characters (the other common typo) is detected too.
        #[test]
        fn adjacent_transpositions_are_detected(position in 0..TOKEN_LEN - 1) {
            let token = ApiToken::generate();
            let mut bytes = token.expose().as_bytes().to_vec();
            prop_assume!(bytes[position] != bytes[position + 1]);
            bytes.swap(position, position + 1);
            let typo = String::from_utf8(bytes).unwrap();
            prop_assert!(ApiToken::parse(&typo).is_err());
        }

        /// Parsing arbitrary text never panics and accepts only well-formed tokens.
        #[test]
        fn parse_never_panics(text in "\\PC{0,50}") {
            if let Ok(token) = ApiToken::parse(&text) {
                prop_assert_eq!(token.expose().len(), TOKEN_LEN);
            }
        }
    }

    #[test]
    fn every_single_character_typo_is_detected_exhaustively() {
        // The property test samples; this walks every position and every replacement for a few
        // tokens, which is cheap (40 × 61 parses per token).
        for _ in 0..5 {
            let token = ApiToken::generate();
            let original = token.expose().as_bytes().to_vec();
            for position in 0..TOKEN_LEN {
                for &replacement in BASE62.iter().chain(b"_-") {
                    if original[position] == replacement {
                        continue;
                    }
                    let mut bytes = original.clone();
                    bytes[position] = replacement;
                    let typo = String::from_utf8(bytes).unwrap();
                    assert!(ApiToken::parse(&typo).is_err(), "position {position}");
                }
            }
        }
    }
}
