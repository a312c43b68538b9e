//! Virtual keys and teams: what they are, how a key is made and how it is stored (only its
//! SHA-256 hash; the key itself is shown once, when it is created).
//!
//! A key is `tw-` followed by 32 characters of URL-safe base64: 24 random bytes (192 bits)
//! from the thread's CSPRNG (ChaCha, seeded by the OS). With that much entropy a plain SHA-256
//! is a sound verifier (no salt or slow hash needed: there is nothing to brute-force), and it
//! lets a replica find a key with one indexed lookup.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Every key starts with this.
pub const KEY_PREFIX: &str = "tw-";
/// Random bytes in a key (192 bits).
const KEY_BYTES: usize = 24;
/// Length of a well-formed key: the prefix and the base64 of [`KEY_BYTES`].
pub const KEY_LEN: usize = 3 + KEY_BYTES * 4 / 3;

/// A new key as the client will send it, with what the store keeps of it.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The key itself (`tw-…`): shown once, never stored.
    pub secret: String,
    /// [`hash`] of the key: what the store keeps.
    pub hash: String,
    /// The first characters (`tw-` and 6 more), for people to tell keys apart in listings.
    pub prefix: String,
}

/// Makes a new random key.
pub fn generate() -> GeneratedKey {
    let bytes: [u8; KEY_BYTES] = rand::random();
    let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    GeneratedKey {
        hash: hash(&secret),
        prefix: secret[..KEY_PREFIX.len() + 6].to_string(),
        secret,
    }
}

/// SHA-256 of a key, lower-case hex: the stored verifier and the lookup index.
pub fn hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Whether `key` has the shape of a tierwise key (`tw-` + 32 URL-safe base64 characters).
pub fn well_formed(key: &str) -> bool {
    key.len() == KEY_LEN
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Spending and rate limits, shared by keys (all of them) and teams (the budgets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// USD per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd_day: Option<Decimal>,
    /// USD per UTC calendar month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd_month: Option<Decimal>,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens (prompt + output estimate) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
}

/// A virtual key as stored (never the key itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Stable id (`key_` + 12 hex digits): what log rows, budgets and the admin API name.
    pub id: String,
    pub name: String,
    /// The first characters of the key, e.g. `tw-AbC12x`.
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(flatten)]
    pub limits: Limits,
    /// Tiers this key may use (`None`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiers: Option<Vec<String>>,
    /// The highest tier this key may use (`None`: no cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tier: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub revoked: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

impl KeyRecord {
    /// Why the key may not be used at `now`, if it may not.
    pub fn refusal(&self, now: OffsetDateTime) -> Option<&'static str> {
        if self.revoked.is_some() {
            Some("revoked")
        } else if self.expires.is_some_and(|e| e <= now) {
            Some("expired")
        } else {
            None
        }
    }
}

/// What `keys create` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(flatten)]
    pub limits: Limits,
    #[serde(default)]
    pub tiers: Option<Vec<String>>,
    #[serde(default)]
    pub max_tier: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
}

/// A change to a key: each `Some` replaces the field; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub team: Option<Option<String>>,
    pub budget_usd_day: Option<Option<Decimal>>,
    pub budget_usd_month: Option<Option<Decimal>>,
    pub rpm: Option<Option<u64>>,
    pub tpm: Option<Option<u64>>,
    pub tiers: Option<Option<Vec<String>>>,
    pub max_tier: Option<Option<String>>,
    pub expires: Option<Option<OffsetDateTime>>,
}

impl KeyUpdate {
    /// Applies the change to `key`.
    pub fn apply(&self, key: &mut KeyRecord) {
        if let Some(v) = &self.name {
            key.name.clone_from(v);
        }
        if let Some(v) = &self.team {
            key.team.clone_from(v);
        }
        if let Some(v) = self.budget_usd_day {
            key.limits.budget_usd_day = v;
        }
        if let Some(v) = self.budget_usd_month {
            key.limits.budget_usd_month = v;
        }
        if let Some(v) = self.rpm {
            key.limits.rpm = v;
        }
        if let Some(v) = self.tpm {
            key.limits.tpm = v;
        }
        if let Some(v) = &self.tiers {
            key.tiers.clone_from(v);
        }
        if let Some(v) = &self.max_tier {
            key.max_tier.clone_from(v);
        }
        if let Some(v) = self.expires {
            key.expires = v;
        }
    }
}

/// A team: a name and budgets its keys share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd_day: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd_month: Option<Decimal>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

/// A change to a team's budgets: `Some(None)` clears one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeamUpdate {
    pub budget_usd_day: Option<Option<Decimal>>,
    pub budget_usd_month: Option<Option<Decimal>>,
}

/// A new key id: `key_` and 12 random hex digits.
pub(crate) fn new_id() -> String {
    let bytes: [u8; 6] = rand::random();
    let mut out = String::from("key_");
    for b in bytes {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Checks a budget amount: non-negative (zero blocks every paid call).
pub fn check_budget(field: &'static str, v: Option<Decimal>) -> Result<(), crate::StoreError> {
    match v {
        Some(d) if d.is_sign_negative() && !d.is_zero() => Err(crate::StoreError::Invalid(
            format!("{field}: a budget cannot be negative ({d})"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_well_formed_and_hashed() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert!(well_formed(&a.secret), "{}", a.secret);
        assert_eq!(a.secret.len(), KEY_LEN);
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.secret[3..]));
        assert!(a.secret.starts_with(&a.prefix));
        // SHA-256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        let good = generate().secret;
        assert!(!well_formed(&good[1..]));
        assert!(!well_formed(&format!("{good}x")));
        assert!(!well_formed(&good.replace("tw-", "sk-")));
        assert!(!well_formed(&format!("tw-{}", "!".repeat(32))));
        assert!(!well_formed(""));
    }
}
