//! # crm-core
//!
//! An embeddable membership and loyalty engine: members and their identities,
//! orders and refunds, point ledgers with lots, pending periods and expiry,
//! behind small storage traits with in-memory and SQLite adapters.
//!
//! The domain modules are pure: no I/O and no clock. Every command takes
//! `now`; the [`Engine`] loads a member from a [`store::Store`], decides the
//! events, and commits them atomically with optimistic concurrency.

pub mod analytics;
pub mod behind;
pub mod campaign;
pub mod command;
pub mod coupon;
pub mod engine;
pub mod error;
pub mod facts;
pub mod feedback;
pub mod ledger;
pub mod lifecycle;
pub mod member;
pub mod money;
pub mod outreach;
pub mod program;
pub mod recommend;
pub mod report;
pub mod rules;
pub mod segment;
pub mod shared;
pub mod shared_list;
pub mod state;
pub mod store;
#[cfg(test)]
mod testing;
mod threads;
pub mod tier;
pub mod time;
pub mod vec_map;
pub mod whatif;

pub use command::{Clawback, Command, Outcome};
pub use engine::{order_key, Engine, Expiring, Liability, PointTypeLiability, StatementEntry, StatementPage};
pub use error::{CrmError, Result};
pub use facts::{Order, OrderItem, OrderStatus, Refund, RefundScope, ReturnedItem};
pub use ledger::{Allocation, Balance, Lot, LotSource};
pub use member::{Consent, Gender, Identity, MemberId, MemberStatus, Profile, ProfilePatch};
pub use program::Program;
pub use state::{Event, MemberState};
#[cfg(feature = "postgres")]
pub use store::PostgresStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{MemoryStore, Store};
