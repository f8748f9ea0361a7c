//! Browser users (docs/protocol.md §6.4): signing up (an account on plan `free` plus its first
//! user, in one transaction) and signing in with an email and a password hashed with argon2id.
//!
//! The plaintext password only ever lives in the caller's memory: it is hashed (default
//! argon2id parameters, a random salt per user) before anything touches the database, it is
//! never logged, and [`User`] does not carry it.

use std::sync::OnceLock;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;
use sqlx::Row;

use crate::accounts::{insert_account, Account};
use crate::hash_gate::gate;
use crate::store::{from_unix, unix_now, violates, DbContext, Store, StoreError};
use crate::subscriptions::FREE_PLAN;

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Most bytes a password may have: hashing cost grows with the input, so this bounds the work
/// one request can ask for.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest email address, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A browser user: an email and password that sign in to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Lower-cased email address.
    pub email: String,
    /// Database id of the user's account.
    pub account_id: i64,
    /// Name of the user's account.
    pub account: String,
    /// When the user signed up (second precision).
    pub created_at: DateTime<Utc>,
}

/// The email address in canonical form (trimmed, lower-cased), or why it is refused.
///
/// A sanity check, not RFC 5322: printable ASCII without spaces or quoting characters, one `@`,
/// a non-empty local part and a dotted domain. ASCII only, so lower-casing means the same on
/// both backends (SQLite's `lower()` is ASCII-only).
pub fn normalize_email(email: &str) -> Result<String, StoreError> {
    let invalid = |reason: &str| Err(StoreError::InvalidEmail(reason.to_owned()));
    let email = email.trim().to_ascii_lowercase();
    if email.is_empty() {
        return invalid("it is empty");
    }
    if email.len() > MAX_EMAIL_LEN {
        return invalid("it is longer than 254 characters");
    }
    if !email
        .bytes()
        .all(|byte| byte.is_ascii_graphic() && !b"\"(),:;<>[\\]".contains(&byte))
    {
        return invalid("use only ASCII letters, digits and `.!#$%&'*+-/=?^_`{|}~@`");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return invalid("it has no `@`");
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return invalid("it needs exactly one `@` with a name of 1-64 characters before it");
    }
    let labels_ok = domain
        .split('.')
        .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if !domain.contains('.') || !labels_ok {
        return invalid("the part after `@` must be a domain such as example.com");
    }
    Ok(email)
}

/// Checks the password rule: at least [`MIN_PASSWORD_CHARS`] characters, at most
/// [`MAX_PASSWORD_BYTES`] bytes. The message never repeats the password.
pub fn validate_password(password: &str) -> Result<(), StoreError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::InvalidPassword(format!(
            "use at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(StoreError::InvalidPassword(format!(
            "use at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

impl Store {
    /// Signs up: creates account `account_name` on plan `free` and a user `email` with
    /// `password`, in one transaction (neither exists without the other).
    ///
    /// Refused with [`StoreError::InvalidEmail`], [`StoreError::InvalidPassword`],
    /// [`StoreError::InvalidName`], [`StoreError::EmailTaken`] or
    /// [`StoreError::AccountExists`]. The password is hashed (argon2id, on a blocking thread)
    /// before the transaction starts, so the write lock is never held while hashing.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        account_name: &str,
    ) -> Result<User, StoreError> {
        let email = normalize_email(email)?;
        validate_password(password)?;
        Account::validate_name(account_name)?;
        let password_hash = hash_password(password.to_owned()).await?;

        let mut transaction = self.pool().begin().await.db("starting a sign-up")?;
        let account = insert_account(&mut transaction, account_name, FREE_PLAN).await?;
        let result = sqlx::query(
            "INSERT INTO users (email, password_hash, account_id, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id, email, account_id, created_at",
        )
        .bind(&email)
        .bind(&password_hash)
        .bind(account.id)
        .bind(unix_now())
        .fetch_one(&mut *transaction)
        .await;
        let row = match result {
            Ok(row) => row,
            Err(error) if violates(&error, ErrorKind::UniqueViolation) => {
                return Err(StoreError::EmailTaken)
            }
            Err(error) => return Err(error).db("creating a user"),
        };
        let user = user_from_row(&row, &account.name).db("reading a user")?;
        transaction.commit().await.db("committing a sign-up")?;
        tracing::info!(
            user.id = user.id,
            account.id = account.id,
            "signed up a user"
        );
        Ok(user)
    }

    /// Signs in: the user with `email` if `password` is theirs, `None` otherwise (unknown
    /// email and wrong password are indistinguishable, including in time: an unknown email is
    /// verified against a dummy hash with the same parameters).
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<Option<User>, StoreError> {
        // A malformed email or an over-long password cannot belong to anyone; still do the
        // work of a verification so the answer takes as long as any other refusal.
        let email = normalize_email(email).ok();
        let password = password.to_owned();
        if password.len() > MAX_PASSWORD_BYTES {
            verify_password(password, None).await?;
            return Ok(None);
        }
        let row = match &email {
            Some(email) => sqlx::query(
                "SELECT u.id, u.email, u.password_hash, u.account_id, u.created_at, \
                 a.name AS account_name \
                 FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.email = $1",
            )
            .bind(email)
            .fetch_optional(self.pool())
            .await
            .db("looking up a user")?,
            None => None,
        };
        let Some(row) = row else {
            verify_password(password, None).await?;
            return Ok(None);
        };
        let decode = || -> anyhow::Result<(User, String)> {
            let account: String = row.try_get("account_name")?;
            Ok((
                user_from_row(&row, &account)?,
                row.try_get("password_hash")?,
            ))
        };
        let (user, password_hash) = decode().db("reading a user")?;
        if verify_password(password, Some(password_hash)).await? {
            tracing::info!(user.id = user.id, "user signed in");
            Ok(Some(user))
        } else {
            tracing::info!(user.id = user.id, "wrong password");
            Ok(None)
        }
    }
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `password` with a fresh salt, on a
/// blocking thread once the process's hashing budget allows, in memory it lends (see
/// `hash_gate`).
async fn hash_password(password: String) -> Result<String, StoreError> {
    gate()
        .run(
            Params::default().block_count(),
            "hashing a password",
            move |memory| hash_password_in(&password, memory),
        )
        .await?
        .db("hashing a password")
}

/// [`hash_password`] with the default parameters (argon2id, v19, m=19456, t=2, p=1, 32-byte
/// output), in `memory` (at least [`Params::block_count`] blocks): the PHC string argon2's own
/// `hash_password` makes, without it allocating the 19 MiB itself.
fn hash_password_in(password: &str, memory: &mut [Block]) -> anyhow::Result<String> {
    let argon2 = Argon2::default();
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|error| anyhow::anyhow!("encoding a salt: {error}"))?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|error| anyhow::anyhow!("decoding a salt: {error}"))?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut output, memory)
        .map_err(|error| anyhow::anyhow!("argon2: {error}"))?;
    let hash = PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&Params::default())
            .map_err(|error| anyhow::anyhow!("argon2 parameters: {error}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(|error| anyhow::anyhow!("argon2: {error}"))?),
    };
    Ok(hash.to_string())
}

/// [`hash_password_in`] with memory of its own (tests, and the dummy hash made once).
fn hash_password_now(password: &str) -> anyhow::Result<String> {
    let mut memory = vec![Block::default(); Params::default().block_count()];
    hash_password_in(password, &mut memory)
}

/// Whether `password` matches the stored PHC string, or the dummy hash when `None`. The
/// algorithm, version and parameters are read from the string, so hashes made with older
/// defaults keep working and take their own memory cost from the hashing budget. A malformed
/// stored hash is a database error. Runs on a blocking thread once the budget allows, in memory
/// the gate lends, like [`hash_password`]; the dummy hash is made there too the first time,
/// never on an async worker.
async fn verify_password(password: String, stored: Option<String>) -> Result<bool, StoreError> {
    let blocks = match &stored {
        Some(stored) => PasswordHash::new(stored)
            .ok()
            .and_then(|parsed| Params::try_from(&parsed).ok())
            .map_or(Params::default().block_count(), |params| {
                params.block_count()
            }),
        None => Params::default().block_count(),
    };
    gate()
        .run(blocks, "verifying a password", move |memory| {
            let stored: &str = match &stored {
                Some(stored) => stored,
                None => dummy_hash(),
            };
            verify_password_in(&password, stored, memory)
        })
        .await?
        .db("verifying a password")
}

/// What argon2's `verify_password` does (hash `password` with the stored hash's algorithm,
/// version, parameters and salt; compare in constant time), in `memory`.
fn verify_password_in(password: &str, stored: &str, memory: &mut [Block]) -> anyhow::Result<bool> {
    let malformed = |error: &dyn std::fmt::Display| {
        anyhow::anyhow!("stored password hash is malformed: {error}")
    };
    let parsed = PasswordHash::new(stored).map_err(|error| malformed(&error))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|error| malformed(&error))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|error| malformed(&error))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|error| malformed(&error))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(malformed(&"no salt or no hash"));
    };
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|error| malformed(&error))?;
    let mut output = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt_bytes, &mut output, memory)
        .map_err(|error| malformed(&error))?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(&output).map_err(|error| malformed(&error))? == expected)
}

/// A hash nobody's password matches (of 32 random bytes, made once per process), verified
/// when the email is unknown so both refusals cost one argon2id verification.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let unguessable = hex::encode(rand::random::<[u8; 32]>());
        hash_password_now(&unguessable).expect("argon2id with default parameters cannot fail")
    })
}

fn user_from_row(row: &AnyRow, account: &str) -> anyhow::Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        account_id: row.try_get("account_id")?,
        account: account.to_owned(),
        created_at: from_unix(row.try_get("created_at")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    fn check(email: &str, expected: Option<&str>) {
        let result = normalize_email(email);
        assert_eq!(result.as_deref().ok(), expected, "{email:?}: {result:?}");
    }

    #[test]
    fn emails_are_sanity_checked_and_lower_cased() {
        check("Ada@Example.COM", Some("ada@example.com"));
        check(
            "  ada+sluice@mail.example.org ",
            Some("ada+sluice@mail.example.org"),
        );
        check("o'neil@x-y.example", Some("o'neil@x-y.example"));
        check("", None);
        check("ada", None);
        check("@example.com", None);
        check("ada@", None);
        check("ada@localhost", None);
        check("ada@@example.com", None);
        check("a@b@example.com", None);
        check("ada lovelace@example.com", None);
        check("ada@example..com", None);
        check("ada@-example.com", None);
        check("\"ada\"@example.com", None);
        check("adá@example.com", None);
        check(&format!("{}@example.com", "a".repeat(65)), None);
        check(&format!("a@{}.com", "b".repeat(250)), None);
    }

    #[test]
    fn passwords_need_twelve_characters_and_at_most_1024_bytes() {
        assert!(validate_password("elevenchars").is_err());
        assert!(validate_password("twelve chars").is_ok());
        assert!(validate_password("ééééééééééé").is_err());
        assert!(validate_password(&"x".repeat(1024)).is_ok());
        let error = validate_password(&"x".repeat(1025))
            .unwrap_err()
            .to_string();
        assert!(error.contains("1024"), "{error}");
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let hash = hash_password_now("correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("correct horse"));
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"correct horse batterz", &parsed)
            .is_err());
        // A fresh salt each time.
        assert_ne!(hash, hash_password_now("correct horse battery").unwrap());
        assert!(dummy_hash().starts_with("$argon2id$"));
    }

    #[test]
    fn hashing_in_lent_memory_agrees_with_argon2_itself() {
        let mut memory = vec![Block::default(); Params::default().block_count()];
        // Ours verifies what argon2 made, with its defaults and with other parameters (an
        // older hash: more memory than the default buffer, argon2i, another output length).
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let made = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password_in("correct horse battery", &made, &mut memory).unwrap());
        assert!(!verify_password_in("correct horse batterz", &made, &mut memory).unwrap());
        let other = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(32 * 1024, 1, 2, Some(24)).unwrap(),
        )
        .hash_password(b"correct horse battery", &salt)
        .unwrap()
        .to_string();
        assert!(
            other.starts_with("$argon2i$v=19$m=32768,t=1,p=2$"),
            "{other}"
        );
        let mut bigger = vec![Block::default(); 32 * 1024];
        assert!(verify_password_in("correct horse battery", &other, &mut bigger).unwrap());
        assert!(!verify_password_in("correct horse batterz", &other, &mut bigger).unwrap());
        // Too little memory for the stored parameters is an error, not a wrong password.
        assert!(verify_password_in("correct horse battery", &other, &mut memory).is_err());
        // A malformed stored hash is an error too.
        assert!(verify_password_in("x", "$argon2id$v=19$nonsense", &mut memory).is_err());
        // The same salt and password give argon2's own string.
        let ours = hash_password_in("correct horse battery", &mut memory).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", parsed.salt.unwrap())
            .unwrap()
            .to_string();
        assert_eq!(ours, theirs);
    }
}
