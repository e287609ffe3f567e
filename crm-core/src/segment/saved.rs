//! Saved segments: a rule, the members it held at the last run, and the
//! entries and exits since then as events outreach triggers can use.
//!
//! Pure values and functions; where snapshots are stored is the engine's
//! business.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ast::Rule;
use super::columns::{eval_columns, MemberColumns};
use super::eval::FieldSource;
use crate::error::Result;
use crate::member::MemberId;

/// A named rule and its membership at the last evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSegment {
    pub id: String,
    pub rule: Rule,
    /// Members at the last run, sorted and without duplicates.
    pub members: Vec<MemberId>,
    /// When the snapshot was taken (`None` before the first run).
    pub evaluated_at: Option<DateTime<Utc>>,
}

/// A member entered (`entered: true`) or left a segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentChange {
    pub segment_id: String,
    pub member_id: MemberId,
    pub entered: bool,
    pub at: DateTime<Utc>,
}

/// Members in `current` but not `previous` (entered) and in `previous` but
/// not `current` (exited). Both inputs must be sorted; a merge walk, so a
/// million-member snapshot diffs in one pass.
pub fn diff(previous: &[MemberId], current: &[MemberId]) -> (Vec<MemberId>, Vec<MemberId>) {
    let (mut entered, mut exited) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < previous.len() || j < current.len() {
        match (previous.get(i), current.get(j)) {
            (Some(p), Some(c)) if p == c => {
                i += 1;
                j += 1;
            }
            (Some(p), Some(c)) if p < c => {
                exited.push(p.clone());
                i += 1;
            }
            (Some(_), Some(c)) | (None, Some(c)) => {
                entered.push(c.clone());
                j += 1;
            }
            (Some(p), None) => {
                exited.push(p.clone());
                i += 1;
            }
            (None, None) => break,
        }
    }
    (entered, exited)
}

impl SavedSegment {
    /// A segment that has never run (every member will count as entering).
    pub fn new(id: impl Into<String>, rule: Rule) -> SavedSegment {
        SavedSegment { id: id.into(), rule, members: Vec::new(), evaluated_at: None }
    }

    /// Whether `member` was in the segment at the last run.
    pub fn contains(&self, member: &MemberId) -> bool {
        self.members.binary_search(member).is_ok()
    }

    /// Batch run: evaluate over `table` (which must cover every member),
    /// replace the snapshot, and return the entries then the exits.
    pub fn refresh(&mut self, table: &MemberColumns, at: DateTime<Utc>) -> Result<Vec<SegmentChange>> {
        let bits = eval_columns(&self.rule, table)?;
        let mut current = table.members(&bits);
        current.sort();
        current.dedup();
        Ok(self.replace(current, at))
    }

    /// Replace the snapshot with `current` (any order) and report the changes.
    pub fn replace(&mut self, mut current: Vec<MemberId>, at: DateTime<Utc>) -> Vec<SegmentChange> {
        current.sort();
        current.dedup();
        let (entered, exited) = diff(&self.members, &current);
        self.members = current;
        self.evaluated_at = Some(at);
        let change = |member_id, entered| SegmentChange { segment_id: self.id.clone(), member_id, entered, at };
        entered.into_iter().map(|m| change(m, true)).chain(exited.into_iter().map(|m| change(m, false))).collect()
    }

    /// Real-time run for one member after a fact: update the snapshot and
    /// report the change, if any.
    pub fn update_member<S: FieldSource + ?Sized>(
        &mut self,
        member: &MemberId,
        source: &S,
        at: DateTime<Utc>,
    ) -> Option<SegmentChange> {
        let now_in = self.rule.matches(source);
        let change = match (self.members.binary_search(member), now_in) {
            (Ok(_), true) | (Err(_), false) => return None,
            (Err(pos), true) => {
                self.members.insert(pos, member.clone());
                true
            }
            (Ok(pos), false) => {
                self.members.remove(pos);
                false
            }
        };
        Some(SegmentChange { segment_id: self.id.clone(), member_id: member.clone(), entered: change, at })
    }
}
