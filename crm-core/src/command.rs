//! Commands a host sends and the outcomes it gets back. Every command is
//! executed under an idempotency key; repeating the key with the same command
//! returns the first outcome, with a different command is a conflict.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::facts::{Order, OrderStatus, Refund};
use crate::feedback::{SurveyKind, TicketStatus};
use crate::ledger::Allocation;
use crate::member::{Gender, Identity, MemberId, Profile, ProfilePatch};
use crate::outreach::OutreachItem;
use crate::program::Action;
use crate::state::anonymise;

/// A command to the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    CreateMember {
        member_id: MemberId,
        #[serde(default)]
        profile: Profile,
        #[serde(default)]
        identities: Vec<Identity>,
        #[serde(default)]
        tags: Vec<String>,
        /// Marketing consent per channel.
        #[serde(default)]
        consents: BTreeMap<String, bool>,
    },
    UpdateProfile {
        member_id: MemberId,
        patch: ProfilePatch,
    },
    LinkIdentity {
        member_id: MemberId,
        identity: Identity,
    },
    UnlinkIdentity {
        member_id: MemberId,
        identity: Identity,
    },
    AddTag {
        member_id: MemberId,
        tag: String,
    },
    RemoveTag {
        member_id: MemberId,
        tag: String,
    },
    SetConsent {
        member_id: MemberId,
        channel: String,
        granted: bool,
    },
    RecordOrder {
        order: Order,
    },
    SetOrderStatus {
        order_id: String,
        status: OrderStatus,
        /// Effective time; `now` when absent.
        #[serde(default)]
        at: Option<DateTime<Utc>>,
    },
    RecordRefund {
        refund: Refund,
    },
    RecordAction {
        member_id: MemberId,
        action: Action,
        reference: String,
    },
    Redeem {
        member_id: MemberId,
        point_type: String,
        points: i64,
        #[serde(default)]
        reason: Option<String>,
    },
    ReverseRedemption {
        member_id: MemberId,
        redemption_id: String,
    },
    Adjust {
        member_id: MemberId,
        point_type: String,
        delta: i64,
        reason: String,
        actor: String,
    },
    Merge {
        survivor: MemberId,
        merged: MemberId,
    },
    Erase {
        member_id: MemberId,
    },
    /// Activate pending lots and expire lots whose time has come, move
    /// tiers and stages on, emit outreach.
    RunDue {
        /// Codes of the coupons that triggers handed out, by
        /// `member/trigger/occurrence`. A run draws them from the operating
        /// system's random source and its receipt records them, so replaying
        /// the command log issues the same codes. Empty when calling.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        coupon_codes: BTreeMap<String, String>,
    },
    /// Put a member in a tier by hand until `until` (then the metric decides again).
    AssignTier {
        member_id: MemberId,
        tier: String,
        until: DateTime<Utc>,
        reason: String,
        actor: String,
    },
    /// A browse, favourite or add-to-cart (cart-abandonment outreach, segments).
    RecordEngagement {
        member_id: MemberId,
        kind: String,
        /// Effective time; `now` when absent.
        #[serde(default)]
        at: Option<DateTime<Utc>>,
        #[serde(default)]
        sku: Option<String>,
        #[serde(default)]
        reference: Option<String>,
    },
    /// Hand a coupon of `template` to a member under `code` (see
    /// [`crate::coupon::generate_codes`]; `Engine::issue_coupon` makes one).
    /// With `for_points`, the template's points price is redeemed in the same
    /// atomic command.
    IssueCoupon {
        member_id: MemberId,
        template: String,
        code: String,
        #[serde(default)]
        for_points: bool,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Use a member's coupon on one of their recorded orders. One coupon per
    /// order: the same coupon again returns the first result, another one is
    /// refused.
    RedeemCoupon {
        member_id: MemberId,
        code: String,
        order_id: String,
    },
    /// Withdraw an unused coupon; points paid for it go back to the member.
    RevokeCoupon {
        member_id: MemberId,
        code: String,
        reason: String,
    },
    /// A conversation with customer service (see [`crate::feedback`]).
    /// Idempotent by `contact_id`, as every feedback record is by its id.
    RecordContact {
        member_id: MemberId,
        contact_id: String,
        channel: String,
        topic: String,
        started_at: DateTime<Utc>,
        #[serde(default)]
        ended_at: Option<DateTime<Utc>>,
    },
    /// Open an after-sales ticket (status `open`).
    OpenTicket {
        member_id: MemberId,
        ticket_id: String,
        kind: String,
        /// Effective time; `now` when absent.
        #[serde(default)]
        at: Option<DateTime<Utc>>,
        #[serde(default)]
        order_id: Option<String>,
        /// Free text (removed on erasure).
        #[serde(default)]
        subject: Option<String>,
    },
    /// Move a ticket to another status (the table in [`crate::feedback`]);
    /// the status it already has is a repeat and changes nothing.
    UpdateTicket {
        member_id: MemberId,
        ticket_id: String,
        status: TicketStatus,
        /// Effective time; `now` when absent. Not before the ticket's last change.
        #[serde(default)]
        at: Option<DateTime<Utc>>,
    },
    /// A review, rated 1-5; earns the programme's `review` bonuses.
    RecordReview {
        member_id: MemberId,
        review_id: String,
        rating: i64,
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        sku: Option<String>,
        #[serde(default)]
        order_id: Option<String>,
        /// Effective time; `now` when absent.
        #[serde(default)]
        at: Option<DateTime<Utc>>,
    },
    /// A survey answer: CSAT 1-5 or NPS 0-10.
    RecordSurvey {
        member_id: MemberId,
        survey_id: String,
        kind: SurveyKind,
        score: i64,
        /// Effective time; `now` when absent.
        #[serde(default)]
        at: Option<DateTime<Utc>>,
        #[serde(default)]
        ticket_id: Option<String>,
        /// Free text (removed on erasure).
        #[serde(default)]
        comment: Option<String>,
    },
}

impl Command {
    /// `RunDue` as a host sends it (no recorded coupon codes).
    pub fn run_due() -> Command {
        Command::RunDue { coupon_codes: BTreeMap::new() }
    }

    /// The idempotency key used when the caller gives none, or `None` when
    /// the command moves points on request (redeem, reverse, adjust) and the
    /// caller must choose the key. Facts use their own id (`order:<id>`,
    /// `refund:<id>`); state-setting commands use their content and `now`, so
    /// a retry at the same `now` is recognised.
    pub fn default_key(&self, now: DateTime<Utc>) -> Option<String> {
        // The body is hashed, not embedded: keys stay within the 128-character
        // limit and carry no personal data (erasure does not rewrite keys).
        let content = |kind: &str| {
            let body = serde_json::to_string(self).unwrap_or_default();
            format!("{kind}:{}:{:032x}", now.to_rfc3339(), fnv1a_128(body.as_bytes()))
        };
        Some(match self {
            Command::CreateMember { member_id, .. } => format!("member:{member_id}"),
            Command::RecordOrder { order } => format!("order:{}", order.id),
            Command::RecordRefund { refund } => format!("refund:{}", refund.id),
            Command::SetOrderStatus { order_id, status, .. } => {
                format!("status:{order_id}:{}", serde_json::to_value(status).ok()?.as_str()?)
            }
            Command::RecordAction { member_id, action, reference } => {
                format!("action:{member_id}:{}:{reference}", serde_json::to_string(action).ok()?.trim_matches('"'))
            }
            Command::Merge { survivor, merged } => format!("merge:{merged}->{survivor}"),
            Command::Erase { member_id } => format!("erase:{member_id}"),
            Command::RunDue { .. } => crate::time::instant_key("run_due", now),
            Command::UpdateProfile { .. } => content("profile"),
            Command::LinkIdentity { .. } | Command::UnlinkIdentity { .. } => content("identity"),
            Command::AddTag { .. } | Command::RemoveTag { .. } => content("tag"),
            Command::SetConsent { .. } => content("consent"),
            Command::AssignTier { .. } => content("tier"),
            Command::RecordEngagement { .. } => content("engagement"),
            Command::IssueCoupon { code, .. } => format!("coupon:{code}"),
            Command::RedeemCoupon { order_id, .. } => format!("coupon_order:{order_id}"),
            Command::RevokeCoupon { code, .. } => format!("coupon_revoke:{code}"),
            Command::RecordContact { contact_id, .. } => format!("contact:{contact_id}"),
            Command::OpenTicket { ticket_id, .. } => format!("ticket:{ticket_id}"),
            Command::UpdateTicket { .. } => content("ticket_status"),
            Command::RecordReview { review_id, .. } => format!("review:{review_id}"),
            Command::RecordSurvey { survey_id, .. } => format!("survey:{survey_id}"),
            Command::Redeem { .. } | Command::ReverseRedemption { .. } | Command::Adjust { .. } => return None,
        })
    }

    /// The same command with personal data removed (erasure).
    ///
    /// Profile values are replaced by placeholders rather than dropped, so
    /// that replaying the redacted command log still awards what depended on
    /// the profile: which fields were filled in (the profile-completed bonus)
    /// and the birthday's month with the member's zone (birthday-month
    /// multipliers). Names, phone, email, region, the birthday's year and day,
    /// gender and custom attributes are gone.
    pub fn redacted(&self) -> Command {
        match self {
            Command::CreateMember { member_id, profile, tags, consents, .. } => Command::CreateMember {
                member_id: member_id.clone(),
                profile: placeholder_profile(profile),
                identities: Vec::new(),
                tags: tags.clone(),
                consents: consents.clone(),
            },
            Command::UpdateProfile { member_id, patch } => {
                Command::UpdateProfile { member_id: member_id.clone(), patch: placeholder_patch(patch) }
            }
            Command::LinkIdentity { member_id, .. } | Command::UnlinkIdentity { member_id, .. } => {
                Command::AddTag { member_id: member_id.clone(), tag: "erased".into() }
            }
            // Free text a customer or an agent wrote goes; ratings and scores stay.
            Command::OpenTicket { subject: Some(_), .. } => {
                let mut c = self.clone();
                if let Command::OpenTicket { subject, .. } = &mut c {
                    *subject = None;
                }
                c
            }
            Command::RecordReview { text: Some(_), .. } => {
                let mut c = self.clone();
                if let Command::RecordReview { text, .. } = &mut c {
                    *text = None;
                }
                c
            }
            Command::RecordSurvey { comment: Some(_), .. } => {
                let mut c = self.clone();
                if let Command::RecordSurvey { comment, .. } = &mut c {
                    *comment = None;
                }
                c
            }
            other => other.clone(),
        }
    }
}

/// FNV-1a, 128 bits: a stable (across builds and platforms) content hash.
pub(crate) fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET, |h, &b| (h ^ u128::from(b)).wrapping_mul(PRIME))
}

const ERASED: &str = "erased";
const ERASED_PHONE: &str = "00000";
const ERASED_EMAIL: &str = "erased@erased.invalid";

fn placeholder_birthday(b: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, b.month(), 1).unwrap_or(b)
}

/// A profile with each personal value replaced by a valid placeholder.
fn placeholder_profile(p: &Profile) -> Profile {
    Profile {
        name: p.name.as_ref().map(|_| ERASED.into()),
        phone: p.phone.as_ref().map(|_| ERASED_PHONE.into()),
        email: p.email.as_ref().map(|_| ERASED_EMAIL.into()),
        birthday: p.birthday.map(placeholder_birthday),
        gender: p.gender.map(|_| Gender::Unknown),
        region: p.region.as_ref().map(|_| ERASED.into()),
        timezone: p.timezone,
        ..anonymise(p)
    }
}

/// A patch with each personal value replaced by a valid placeholder.
fn placeholder_patch(p: &ProfilePatch) -> ProfilePatch {
    ProfilePatch {
        name: p.name.as_ref().map(|_| ERASED.into()),
        phone: p.phone.as_ref().map(|_| ERASED_PHONE.into()),
        email: p.email.as_ref().map(|_| ERASED_EMAIL.into()),
        birthday: p.birthday.map(placeholder_birthday),
        gender: p.gender.map(|_| Gender::Unknown),
        region: p.region.as_ref().map(|_| ERASED.into()),
        join_channel: p.join_channel.clone(),
        timezone: p.timezone,
        attributes: BTreeMap::new(),
        clear: p.clear.clone(),
    }
}

/// Points clawed back from one point type by a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clawback {
    pub point_type: String,
    /// Points taken from open lots (the order's own first).
    pub taken: i64,
    /// Points added to the negative balance.
    pub debt: i64,
    /// Points written off (cap-at-zero policy).
    pub shortfall: i64,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// A member was created or changed.
    Member {
        member_id: MemberId,
    },
    /// An order was recorded (or became paid); `earned` per point type
    /// includes the bonuses the order triggered (first-order bonus); `lots`
    /// are the ids of every lot the order created, its bonus lots included,
    /// so `earned` is the sum of their grants. (The sign-up bonus of a member
    /// enrolled by the order is the member's, not the order's: in neither.)
    Order {
        order_id: String,
        member_id: MemberId,
        earned: BTreeMap<String, i64>,
        lots: Vec<String>,
    },
    /// A refund (or cancellation) clawed back points.
    Refund {
        refund_id: String,
        order_id: String,
        member_id: MemberId,
        amount: Decimal,
        clawbacks: Vec<Clawback>,
    },
    Redemption {
        redemption_id: String,
        member_id: MemberId,
        point_type: String,
        points: i64,
        allocations: Vec<Allocation>,
    },
    Reversal {
        redemption_id: String,
        member_id: MemberId,
        point_type: String,
        points: i64,
    },
    Adjustment {
        member_id: MemberId,
        point_type: String,
        delta: i64,
        lot_id: Option<String>,
    },
    Action {
        member_id: MemberId,
        awarded: BTreeMap<String, i64>,
    },
    Merge {
        survivor: MemberId,
        merged: MemberId,
        moved: BTreeMap<String, i64>,
    },
    Erasure {
        member_id: MemberId,
    },
    /// What `run_due` did. `outreach` lists the messages to send; a repeated
    /// run for the same `now` returns the stored outcome without them
    /// (`outreach_count` still says how many there were), so nothing is
    /// handed out twice.
    Due {
        members: u64,
        activated: i64,
        expired: i64,
        #[serde(default)]
        tier_changes: u64,
        #[serde(default)]
        stage_changes: u64,
        #[serde(default)]
        outreach: Vec<OutreachItem>,
        #[serde(default)]
        outreach_count: u64,
        #[serde(default)]
        suppressed: u64,
    },
    /// A tier was assigned by hand.
    Tier {
        member_id: MemberId,
        tier: String,
        until: DateTime<Utc>,
    },
    /// A coupon was issued (and paid for with `points`, when exchanged).
    CouponIssued {
        member_id: MemberId,
        code: String,
        template: String,
        valid_from: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        #[serde(default)]
        points: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redemption_id: Option<String>,
    },
    /// A coupon was used on an order: `discount` off, costing the shop `cost`.
    CouponRedeemed {
        member_id: MemberId,
        code: String,
        template: String,
        order_id: String,
        discount: Decimal,
        cost: Decimal,
    },
    /// A coupon was withdrawn; `points` went back to the member.
    CouponRevoked {
        member_id: MemberId,
        code: String,
        #[serde(default)]
        points: i64,
    },
    /// A contact with customer service was recorded.
    ContactRecorded {
        member_id: MemberId,
        contact_id: String,
    },
    /// A ticket was opened or moved: its status now, and its resolution
    /// time in whole minutes once it is resolved or closed.
    Ticket {
        member_id: MemberId,
        ticket_id: String,
        status: TicketStatus,
        #[serde(default)]
        resolution_minutes: Option<i64>,
    },
    /// A review was recorded; `awarded` are the points of the programme's
    /// `review` bonuses it earned, per point type.
    ReviewRecorded {
        member_id: MemberId,
        review_id: String,
        rating: u8,
        #[serde(default)]
        awarded: BTreeMap<String, i64>,
    },
    /// A survey answer was recorded.
    SurveyRecorded {
        member_id: MemberId,
        survey_id: String,
        kind: SurveyKind,
        score: u8,
    },
}

impl Outcome {
    /// The outcome of a `run_due` that only activated and expired points
    /// (no tier, stage or outreach work).
    pub fn due(members: u64, activated: i64, expired: i64) -> Outcome {
        Outcome::Due {
            members,
            activated,
            expired,
            tier_changes: 0,
            stage_changes: 0,
            outreach: Vec::new(),
            outreach_count: 0,
            suppressed: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Profile {
        Profile {
            name: Some("Li Lei".into()),
            phone: Some("+86 138 0013 8000".into()),
            email: Some("li@example.com".into()),
            birthday: NaiveDate::from_ymd_opt(1990, 2, 28),
            gender: Some(Gender::Male),
            region: Some("Pudong".into()),
            joined_at: Some(DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap().with_timezone(&Utc)),
            join_channel: Some("app".into()),
            timezone: Some("Asia/Shanghai".parse().unwrap()),
            attributes: BTreeMap::from([("vip_code".to_string(), serde_json::json!("X-123"))]),
        }
    }

    #[test]
    fn redaction_keeps_what_earning_depends_on_and_nothing_personal() {
        let create = Command::CreateMember {
            member_id: "m".into(),
            profile: full(),
            identities: vec![Identity { channel: "wechat".into(), external_id: "o-secret".into() }],
            tags: vec!["vip".into()],
            consents: BTreeMap::from([("sms".to_string(), true)]),
        };
        let r = create.redacted();
        let text = serde_json::to_string(&r).unwrap();
        for secret in ["Li Lei", "138 0013", "li@example", "Pudong", "o-secret", "X-123", "1990", "male"] {
            assert!(!text.contains(secret), "{secret} left in {text}");
        }
        let Command::CreateMember { profile, identities, .. } = &r else { panic!("{r:?}") };
        assert!(identities.is_empty());
        // Which fields were filled in, the birthday month and the zone survive.
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        profile.validate("profile", now).unwrap();
        assert!(profile.name.is_some() && profile.phone.is_some() && profile.email.is_some());
        assert!(profile.gender.is_some() && profile.region.is_some());
        assert_eq!(profile.birthday.map(|b| b.month()), Some(2));
        assert_eq!(profile.timezone, full().timezone);
        assert_eq!((profile.joined_at, profile.join_channel.clone()), (full().joined_at, full().join_channel));
        // Redaction is idempotent, so a retried original matches the stored redacted command.
        assert_eq!(r.redacted(), r);
    }

    #[test]
    fn default_keys_of_content_commands_are_short_stable_and_free_of_personal_data() {
        let now = DateTime::parse_from_rfc3339("2024-02-29T23:59:59+08:00").unwrap().with_timezone(&Utc);
        let link = |id: &str| Command::LinkIdentity {
            member_id: "alice".into(),
            identity: Identity { channel: "wechat".into(), external_id: id.into() },
        };
        let long = "wx-".repeat(80);
        let k = link(&long).default_key(now).unwrap();
        assert!(k.len() <= 128 && !k.contains("wx-"), "{k}");
        assert_eq!(k, link(&long).default_key(now).unwrap());
        assert_ne!(k, link("other").default_key(now).unwrap());
        assert_ne!(k, link(&long).default_key(now + chrono::Duration::seconds(1)).unwrap());
        let patch = ProfilePatch { phone: Some("13912345678".into()), ..ProfilePatch::default() };
        let k = Command::UpdateProfile { member_id: "alice".into(), patch }.default_key(now).unwrap();
        assert!(k.starts_with("profile:2024-02-29T15:59:59+00:00:") && !k.contains("139"), "{k}");
        // Pinned: the hash must not change between releases (stored receipts use it).
        assert_eq!(fnv1a_128(b""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }

    #[test]
    fn redacted_patch_keeps_clears_and_drops_values() {
        let patch = ProfilePatch {
            phone: Some("13912345678".into()),
            birthday: NaiveDate::from_ymd_opt(2000, 12, 31),
            attributes: BTreeMap::from([("k".to_string(), serde_json::json!("secret"))]),
            clear: vec!["email".into()],
            ..ProfilePatch::default()
        };
        let c = Command::UpdateProfile { member_id: "m".into(), patch };
        let r = c.redacted();
        let Command::UpdateProfile { patch, .. } = &r else { panic!("{r:?}") };
        assert_eq!(patch.phone.as_deref(), Some(ERASED_PHONE));
        assert_eq!(patch.birthday, NaiveDate::from_ymd_opt(1900, 12, 1));
        assert!(patch.attributes.is_empty() && patch.name.is_none());
        assert_eq!(patch.clear, vec!["email".to_string()]);
        assert_eq!(r.redacted(), r);
    }
}
