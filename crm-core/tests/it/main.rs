//! Integration tests, one binary so they link once.

/// `Store` for a test wrapper that owns a real adapter (and cleans up after it):
/// every method, the defaulted ones included, goes to `self.s()`, so the tests
/// exercise the adapter's own implementation rather than the trait defaults.
/// `delegate_store!(W, |w| handles)` sends read scopes (`begin_reads`,
/// `end_reads`) to every handle `handles` yields instead.
macro_rules! delegate_store {
    ($wrapper:ty) => {
        delegate_store!($wrapper, |w| [w.s()]);
    };
    ($wrapper:ty, |$w:ident| $scopes:expr) => {
        impl crm_core::Store for $wrapper {
            fn load(&self, id: &crm_core::MemberId) -> crm_core::Result<Option<crm_core::store::Versioned>> {
                self.s().load(id)
            }
            fn identity_owner(&self, identity: &crm_core::Identity) -> crm_core::Result<Option<crm_core::MemberId>> {
                self.s().identity_owner(identity)
            }
            fn order_owner(&self, order_id: &str) -> crm_core::Result<Option<crm_core::MemberId>> {
                self.s().order_owner(order_id)
            }
            fn receipt(&self, key: &str) -> crm_core::Result<Option<crm_core::store::Receipt>> {
                self.s().receipt(key)
            }
            fn commit(&self, commit: crm_core::store::Commit) -> Result<(), crm_core::store::CommitError> {
                self.s().commit(commit)
            }
            fn tally(&self, key: &str) -> crm_core::Result<Option<crm_core::store::VersionedTally>> {
                self.s().tally(key)
            }
            fn events(&self, id: &crm_core::MemberId) -> crm_core::Result<Vec<crm_core::Event>> {
                self.s().events(id)
            }
            fn scan(
                &self,
                visit: &mut dyn FnMut(crm_core::store::Versioned) -> crm_core::Result<()>,
            ) -> crm_core::Result<()> {
                self.s().scan(visit)
            }
            fn receipts(
                &self,
                visit: &mut dyn FnMut(crm_core::store::Receipt) -> crm_core::Result<()>,
            ) -> crm_core::Result<()> {
                self.s().receipts(visit)
            }
            fn due_members(&self, now: chrono::DateTime<chrono::Utc>) -> crm_core::Result<Vec<crm_core::MemberId>> {
                self.s().due_members(now)
            }
            fn inspect(
                &self,
                id: &crm_core::MemberId,
                view: &mut dyn FnMut(&crm_core::MemberState),
            ) -> crm_core::Result<bool> {
                self.s().inspect(id, view)
            }
            fn inspect_all(
                &self,
                view: &mut dyn FnMut(&crm_core::MemberState) -> crm_core::Result<()>,
            ) -> crm_core::Result<()> {
                self.s().inspect_all(view)
            }
            fn begin_reads(&self) {
                let $w = self;
                for s in $scopes {
                    s.begin_reads();
                }
            }
            fn end_reads(&self) {
                let $w = self;
                for s in $scopes {
                    s.end_reads();
                }
            }
        }
    };
}

mod analytics;
mod campaign;
mod conformance;
mod coupon;
mod coupon_stock;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod durability;
mod engine;
mod feedback;
mod journey;
#[cfg(feature = "postgres")]
mod postgres;
mod props;
mod recommend;
mod report;
mod retry;
mod scenarios;
mod segment;
mod whatif;
