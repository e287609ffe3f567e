//! Commands a host sends and the outcomes it gets back. Every command is
//! executed under an idempotency key; repeating the key with the same command
//! returns the first outcome, with a different command is a conflict.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::facts::{Order, OrderStatus, Refund};
use crate::ledger::Allocation;
use crate::member::{Identity, MemberId, Profile, ProfilePatch};
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
    /// Activate pending lots and expire lots whose time has come.
    RunDue,
}

impl Command {
    /// The idempotency key used when the caller gives none, or `None` when
    /// the command moves points on request (redeem, reverse, adjust) and the
    /// caller must choose the key. Facts use their own id (`order:<id>`,
    /// `refund:<id>`); state-setting commands use their content and `now`, so
    /// a retry at the same `now` is recognised.
    pub fn default_key(&self, now: DateTime<Utc>) -> Option<String> {
        let content = |kind: &str| {
            let body = serde_json::to_string(self).unwrap_or_default();
            format!("{kind}:{}:{body}", now.to_rfc3339())
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
            Command::RunDue => format!("run_due:{}", now.to_rfc3339()),
            Command::UpdateProfile { .. } => content("profile"),
            Command::LinkIdentity { .. } | Command::UnlinkIdentity { .. } => content("identity"),
            Command::AddTag { .. } | Command::RemoveTag { .. } => content("tag"),
            Command::SetConsent { .. } => content("consent"),
            Command::Redeem { .. } | Command::ReverseRedemption { .. } | Command::Adjust { .. } => return None,
        })
    }

    /// The same command with personal data removed (erasure).
    pub fn redacted(&self) -> Command {
        match self {
            Command::CreateMember { member_id, profile, tags, consents, .. } => Command::CreateMember {
                member_id: member_id.clone(),
                profile: anonymise(profile),
                identities: Vec::new(),
                tags: tags.clone(),
                consents: consents.clone(),
            },
            Command::UpdateProfile { member_id, .. } => {
                Command::UpdateProfile { member_id: member_id.clone(), patch: ProfilePatch::default() }
            }
            Command::LinkIdentity { member_id, .. } | Command::UnlinkIdentity { member_id, .. } => {
                Command::AddTag { member_id: member_id.clone(), tag: "erased".into() }
            }
            other => other.clone(),
        }
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
    /// includes bonuses; `lots` are the new lot ids.
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
    Due {
        members: u64,
        activated: i64,
        expired: i64,
    },
}
