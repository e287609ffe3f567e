//! Members (会员): profile, identities across channels, tags and consent.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};

/// Member id chosen by the host.
#[derive(Debug, Clone, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(pub String);

/// The string's hash, as derived (equal ids hash alike: equality is the string's).
impl std::hash::Hash for MemberId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// Byte equality, as `String`'s, with ids of up to 16 bytes compared in
/// two loads each instead of a call to `memcmp`. Why: a transaction finds
/// its members by id at nearly every step of a command (the what-if replay
/// does it tens of times per order), and host ids are short.
impl PartialEq for MemberId {
    #[inline]
    fn eq(&self, other: &MemberId) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        // The first and the last `N` bytes of each (they overlap when the
        // id is shorter than `2 * N`).
        fn ends<const N: usize>(a: &[u8], b: &[u8]) -> bool {
            let last = a.len() - N;
            a[..N] == b[..N] && a[last..] == b[last..]
        }
        match a.len() {
            0..=3 => a == b,
            4..=7 => ends::<4>(a, b),
            8..=16 => ends::<8>(a, b),
            _ => a == b,
        }
    }
}

impl MemberId {
    /// Validate and wrap a host id (1-128 printable characters).
    pub fn parse(id: impl Into<String>, field: &str) -> Result<MemberId> {
        let id = id.into();
        crate::facts::check_ref(&id, field)?;
        Ok(MemberId(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MemberId {
    fn from(s: &str) -> Self {
        MemberId(s.to_string())
    }
}

impl From<String> for MemberId {
    fn from(s: String) -> Self {
        MemberId(s)
    }
}

impl From<MemberId> for String {
    fn from(m: MemberId) -> Self {
        m.0
    }
}

/// Gender as recorded by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Female,
    Male,
    Other,
    Unknown,
}

/// Personal profile. Everything here is personal data and is cleared on erasure.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub gender: Option<Gender>,
    pub region: Option<String>,
    pub joined_at: Option<DateTime<Utc>>,
    pub join_channel: Option<String>,
    /// The member's own zone, for birthdays and quiet hours; programme zone if absent.
    #[serde(with = "opt_tz")]
    pub timezone: Option<Tz>,
    /// Host-defined attributes.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// A partial profile update: `Some` fields are set, names in `clear` are
/// removed, attributes are merged (a JSON `null` removes the key).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfilePatch {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub gender: Option<Gender>,
    pub region: Option<String>,
    pub join_channel: Option<String>,
    #[serde(with = "opt_tz")]
    pub timezone: Option<Tz>,
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Field names to clear.
    pub clear: Vec<String>,
}

const CLEARABLE: &[&str] = &["name", "phone", "email", "birthday", "gender", "region", "join_channel", "timezone"];

impl Profile {
    /// Validate a profile (field names are prefixed with `at`).
    pub fn validate(&self, at: &str, now: DateTime<Utc>) -> Result<()> {
        validate_fields(
            at,
            now,
            self.name.as_deref(),
            self.phone.as_deref(),
            self.email.as_deref(),
            self.birthday,
            &self.attributes,
        )
    }

    /// Apply a validated patch.
    pub fn apply(&mut self, patch: &ProfilePatch) {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &patch.$f { self.$f = Some(v.clone()); } )* };
        }
        set!(name, phone, email, birthday, gender, region, join_channel, timezone);
        for (k, v) in &patch.attributes {
            if v.is_null() {
                self.attributes.remove(k);
            } else {
                self.attributes.insert(k.clone(), v.clone());
            }
        }
        for f in &patch.clear {
            match f.as_str() {
                "name" => self.name = None,
                "phone" => self.phone = None,
                "email" => self.email = None,
                "birthday" => self.birthday = None,
                "gender" => self.gender = None,
                "region" => self.region = None,
                "join_channel" => self.join_channel = None,
                "timezone" => self.timezone = None,
                _ => {}
            }
        }
    }
}

impl ProfilePatch {
    /// Validate a patch.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<()> {
        validate_fields(
            "patch",
            now,
            self.name.as_deref(),
            self.phone.as_deref(),
            self.email.as_deref(),
            self.birthday,
            &self.attributes,
        )?;
        for (i, f) in self.clear.iter().enumerate() {
            if !CLEARABLE.contains(&f.as_str()) {
                return Err(CrmError::invalid(format!("patch.clear[{i}]"), format!("cannot clear {f:?}")));
            }
        }
        Ok(())
    }
}

fn validate_fields(
    at: &str,
    now: DateTime<Utc>,
    name: Option<&str>,
    phone: Option<&str>,
    email: Option<&str>,
    birthday: Option<NaiveDate>,
    attributes: &BTreeMap<String, serde_json::Value>,
) -> Result<()> {
    if let Some(n) = name {
        if n.trim().is_empty() || n.chars().count() > 200 {
            return Err(CrmError::invalid(format!("{at}.name"), "must be 1-200 characters"));
        }
    }
    if let Some(p) = phone {
        let digits = p.chars().filter(char::is_ascii_digit).count();
        if !(5..=20).contains(&digits) || !p.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c)) {
            return Err(CrmError::invalid(
                format!("{at}.phone"),
                "must be 5-20 digits with optional + - ( ) and spaces",
            ));
        }
    }
    if let Some(e) = email {
        let ok = e.len() <= 254
            && e.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
            && !e.chars().any(char::is_whitespace);
        if !ok {
            return Err(CrmError::invalid(format!("{at}.email"), "is not an email address"));
        }
    }
    if let Some(b) = birthday {
        if b > now.date_naive() {
            return Err(CrmError::invalid(format!("{at}.birthday"), "must not be in the future"));
        }
    }
    for k in attributes.keys() {
        if k.is_empty() || k.len() > 64 {
            return Err(CrmError::invalid(format!("{at}.attributes"), "keys must be 1-64 characters"));
        }
    }
    Ok(())
}

/// An identity of a member in one channel (web account, app, WeChat openid,
/// Taobao nick, store card, phone). One identity maps to at most one member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub channel: String,
    pub external_id: String,
}

impl Identity {
    /// Build and validate an identity.
    pub fn new(channel: impl Into<String>, external_id: impl Into<String>) -> Result<Identity> {
        let i = Identity { channel: channel.into(), external_id: external_id.into() };
        i.validate("identity")?;
        Ok(i)
    }

    /// Check both parts are present and reasonable.
    pub fn validate(&self, at: &str) -> Result<()> {
        if self.channel.is_empty() || self.channel.len() > 64 {
            return Err(CrmError::invalid(format!("{at}.channel"), "must be 1-64 characters"));
        }
        if self.external_id.is_empty() || self.external_id.len() > 256 {
            return Err(CrmError::invalid(format!("{at}.external_id"), "must be 1-256 characters"));
        }
        Ok(())
    }
}

/// Marketing consent for one channel, with when it was given or withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub granted: bool,
    pub at: DateTime<Utc>,
}

/// Where a member record stands.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MemberStatus {
    #[default]
    Active,
    /// Merged into another member, which now owns its lots, orders and identities.
    Merged { into: MemberId, at: DateTime<Utc> },
    /// Personal data erased; the anonymised ledger remains.
    Erased { at: DateTime<Utc> },
}

mod opt_tz {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Option<Tz>, s: S) -> Result<S::Ok, S::Error> {
        match tz {
            Some(tz) => s.serialize_some(tz.name()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Tz>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(name) => name
                .parse::<Tz>()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("unknown IANA time zone {name:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Ids are equal exactly when their strings are, at every length
        /// (the short ones are compared by their ends), also when they
        /// differ in one byte anywhere.
        #[test]
        fn ids_are_equal_exactly_when_their_strings_are(
            id in "[a-z0-9\u{e9}\u{4e2d}-]{0,24}",
            other in "[a-z0-9]{0,24}",
            at in any::<proptest::sample::Index>(),
        ) {
            let same = MemberId(id.clone());
            prop_assert_eq!(same == MemberId(id.clone()), true);
            prop_assert_eq!(MemberId(other.clone()) == same, other == id);
            let mut bytes = id.clone().into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] ^= 0x01;
                let changed = MemberId(String::from_utf8_lossy(&bytes).into_owned());
                prop_assert_eq!(changed == same, changed.0 == id);
            }
        }
    }
}
