//! Facts recorded behind the scheduler: what [`MemberState::outreach_behind`]
//! lists so that the next `run_due` looks at messages due before it.
//!
//! A run considers each occurrence once, in the range since the member's
//! last run. A fact that reaches the engine after that run (an order feed
//! hours late, a review synced overnight, a refund dated last week) may have
//! made a message due inside the range already covered; the fact is listed
//! here and the next run looks at its messages again, within the
//! programme's staleness. So may a profile update: a birthday given after
//! its greeting fell due, or a new zone in which a local-hour message (the
//! member day at 10:00) falls due earlier than in the old one.
//!
//! Each entry is typed: a message-bearing fact of a known [`FactKind`] with
//! the key its occurrences carry, or the earliest [`Behind::Reduction`] of the
//! tier metric (for the tier-retention warning). Stored states keep the
//! text form `kind:key` (`order:o-1`, `expiry:points:2025-06-30T16:00:00+00:00`,
//! `reduction:2025-11-30T10:00:00+00:00`), so states written before the type
//! existed read back unchanged.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use crm_core::behind::{Behind, FactKind};
//!
//! let order = Behind::fact(FactKind::Order, "o-1");
//! assert_eq!(order.to_string(), "order:o-1");
//! assert!(order.is(FactKind::Order, "o-1"));
//! assert!(!order.is(FactKind::Review, "o-1"));
//!
//! let refund = Behind::Reduction(Utc.with_ymd_and_hms(2025, 11, 30, 10, 0, 0).unwrap());
//! assert_eq!(refund.to_string(), "reduction:2025-11-30T10:00:00+00:00");
//! assert_eq!("reduction:2025-11-30T10:00:00+00:00".parse::<Behind>(), Ok(refund));
//! assert!("coupon:c-1".parse::<Behind>().is_err());
//! ```
//!
//! [`MemberState::outreach_behind`]: crate::MemberState::outreach_behind

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The kind of a fact whose messages a late record can bring due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FactKind {
    /// An order placed or completed: unpaid-order reminders, order care (key: the order id).
    Order,
    /// An engagement event: cart reminders (key: its instant, RFC 3339).
    Engagement,
    /// A ticket closed: its survey (key: the ticket id).
    Ticket,
    /// A product review: a low-rating follow-up (key: the review id).
    Review,
    /// A survey answer: a low-rating follow-up (key: the survey id).
    Survey,
    /// Points earned that expire: the expiry warning (key: `<point type>:<expiry instant>`).
    Expiry,
    /// A birthday set or changed: this year's greeting, which may have
    /// fallen due before the run that follows (key: when it was set, RFC
    /// 3339; not the date itself, which is personal data the profile's
    /// erasure must not leave behind here).
    Birthday,
    /// The member's time zone changed: messages that fall due earlier in
    /// the new zone than in the old one, some before the last run (key: the
    /// zone the runs before had used, an IANA name, or empty for the
    /// programme's zone).
    Zone,
}

impl FactKind {
    /// Every kind.
    pub const ALL: [FactKind; 8] = [
        FactKind::Order,
        FactKind::Engagement,
        FactKind::Ticket,
        FactKind::Review,
        FactKind::Survey,
        FactKind::Expiry,
        FactKind::Birthday,
        FactKind::Zone,
    ];

    /// The kind's name in the text form.
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Order => "order",
            FactKind::Engagement => "engagement",
            FactKind::Ticket => "ticket",
            FactKind::Review => "review",
            FactKind::Survey => "survey",
            FactKind::Expiry => "expiry",
            FactKind::Birthday => "birthday",
            FactKind::Zone => "zone",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<FactKind> {
        FactKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// The name of the reduction entry in the text form.
const REDUCTION: &str = "reduction";

/// One entry of [`crate::MemberState::outreach_behind`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Behind {
    /// A fact of `kind` whose occurrences carry `key`.
    Fact { kind: FactKind, key: String },
    /// The earliest reduction of the tier metric (a refund, a clawback, a
    /// negative adjustment) recorded behind: a tier-retention warning due at
    /// or after it is looked at again.
    Reduction(DateTime<Utc>),
}

impl Behind {
    /// A fact of `kind` keyed `key`.
    pub fn fact(kind: FactKind, key: impl Into<String>) -> Behind {
        Behind::Fact { kind, key: key.into() }
    }

    /// Is this a fact of `kind`, whatever its key?
    pub fn is_kind(&self, kind: FactKind) -> bool {
        matches!(self, Behind::Fact { kind: k, .. } if *k == kind)
    }

    /// Is this the fact of `kind` keyed `key`?
    pub fn is(&self, kind: FactKind, key: &str) -> bool {
        matches!(self, Behind::Fact { kind: k, key: own } if *k == kind && own == key)
    }

    /// The instant of the reduction entry.
    pub fn reduction(&self) -> Option<DateTime<Utc>> {
        match self {
            Behind::Reduction(at) => Some(*at),
            Behind::Fact { .. } => None,
        }
    }
}

impl fmt::Display for Behind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behind::Fact { kind, key } => write!(f, "{}:{key}", kind.as_str()),
            Behind::Reduction(at) => f.write_str(&crate::time::instant_key(REDUCTION, *at)),
        }
    }
}

/// Why a text is not an entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a fact behind the scheduler ({text:?}): {reason}")]
pub struct ParseBehindError {
    text: String,
    reason: &'static str,
}

impl FromStr for Behind {
    type Err = ParseBehindError;

    fn from_str(text: &str) -> Result<Behind, ParseBehindError> {
        let fail = |reason| ParseBehindError { text: text.to_string(), reason };
        let (kind, key) = text.split_once(':').ok_or_else(|| fail("expected kind:key"))?;
        if kind == REDUCTION {
            let at = DateTime::parse_from_rfc3339(key).map_err(|_| fail("the reduction's instant is not RFC 3339"))?;
            return Ok(Behind::Reduction(at.with_timezone(&Utc)));
        }
        let kind = FactKind::parse(kind).ok_or_else(|| fail("unknown kind"))?;
        Ok(Behind::fact(kind, key))
    }
}

impl From<Behind> for String {
    fn from(b: Behind) -> String {
        b.to_string()
    }
}

impl TryFrom<String> for Behind {
    type Error = ParseBehindError;

    fn try_from(text: String) -> Result<Behind, ParseBehindError> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stored_text_forms_read_back_as_before() {
        // The forms states were written with while the entries were strings.
        let stored = r#"["order:o-1","expiry:points:2025-06-30T16:00:00+00:00","engagement:2025-01-02T03:04:05.006+00:00","ticket:t:9","review:r1","survey:s1","reduction:2025-11-30T10:00:00+00:00"]"#;
        let read: Vec<Behind> = serde_json::from_str(stored).unwrap();
        assert_eq!(read[0], Behind::fact(FactKind::Order, "o-1"));
        assert_eq!(read[1], Behind::fact(FactKind::Expiry, "points:2025-06-30T16:00:00+00:00"));
        assert_eq!(read[3], Behind::fact(FactKind::Ticket, "t:9"));
        assert_eq!(read[6].reduction(), Some(DateTime::parse_from_rfc3339("2025-11-30T10:00:00Z").unwrap().into()));
        assert_eq!(serde_json::to_string(&read).unwrap(), stored);
    }

    #[test]
    fn malformed_entries_are_refused_with_the_reason() {
        for (text, reason) in [
            ("order", "expected kind:key"),
            ("coupon:c-1", "unknown kind"),
            ("reduction:yesterday", "the reduction's instant is not RFC 3339"),
        ] {
            let e = text.parse::<Behind>().unwrap_err();
            assert_eq!(e.reason, reason, "{text}");
            assert!(e.to_string().contains(text));
        }
        assert!(serde_json::from_str::<Behind>(r#""coupon:c-1""#).is_err());
    }

    proptest! {
        #[test]
        fn every_entry_reads_back_from_its_text(
            kind in proptest::sample::select(FactKind::ALL.to_vec()),
            key in ".{0,12}",
            secs in 0i64..5_000_000_000,
            nanos in 0u32..1_000_000_000,
            reduction in any::<bool>(),
        ) {
            let entry = if reduction {
                Behind::Reduction(DateTime::from_timestamp(secs, nanos).unwrap())
            } else {
                Behind::fact(kind, key)
            };
            prop_assert_eq!(entry.to_string().parse::<Behind>(), Ok(entry.clone()));
            let json = serde_json::to_string(&entry).unwrap();
            prop_assert_eq!(serde_json::from_str::<Behind>(&json).unwrap(), entry);
        }
    }
}
