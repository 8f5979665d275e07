//! Both stores of this crate pass the event store conformance suite.

use accord_store::{MemoryStore, SqliteStore, conformance};

#[test]
fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    conformance::run(&mut || {
        n += 1;
        SqliteStore::create(&dir.path().join(format!("{n}.db"))).unwrap()
    });
}

#[test]
fn memory_store_conforms() {
    conformance::run(&mut MemoryStore::new);
}

/// The suite can fail: a store that drops what it is given does not pass.
#[test]
fn a_store_that_loses_events_fails_the_suite() {
    struct Forgetful(MemoryStore);
    impl accord_store::EventStore for Forgetful {
        fn head(
            &self,
            a: &accord_core::AgentId,
        ) -> Result<Option<accord_store::Head>, accord_store::StoreError> {
            self.0.head(a)
        }
        fn append_with(
            &mut self,
            a: &accord_core::AgentId,
            b: &mut accord_store::BuildFn<'_>,
        ) -> Result<Vec<accord_core::SignedEvent>, accord_store::StoreError> {
            self.0.append_with(a, b)
        }
        fn append_with_state(
            &mut self,
            a: &accord_core::AgentId,
            k: &[&str],
            b: &mut accord_store::StateBuildFn<'_>,
        ) -> Result<Vec<accord_core::SignedEvent>, accord_store::StoreError> {
            self.0.append_with_state(a, k, b)
        }
        fn tree_node(
            &self,
            a: &accord_core::AgentId,
            l: u32,
            i: u64,
        ) -> Result<Option<accord_core::Hash32>, accord_store::StoreError> {
            self.0.tree_node(a, l, i)
        }
        fn put_state(
            &mut self,
            a: &accord_core::AgentId,
            k: &str,
            v: Option<&[u8]>,
        ) -> Result<(), accord_store::StoreError> {
            self.0.put_state(a, k, v)
        }
        fn state(
            &self,
            a: &accord_core::AgentId,
            k: &str,
        ) -> Result<Option<Vec<u8>>, accord_store::StoreError> {
            self.0.state(a, k)
        }
        fn quarantined(
            &self,
            a: &accord_core::AgentId,
        ) -> Result<Vec<accord_store::Quarantined>, accord_store::StoreError> {
            self.0.quarantined(a)
        }
        // Drops the last event of every scan.
        fn scan(
            &self,
            a: &accord_core::AgentId,
            from: u64,
            to: Option<u64>,
            f: &mut accord_store::ScanFn<'_>,
        ) -> Result<(), accord_store::StoreError> {
            let last = self.0.head(a)?.map_or(0, |h| h.seq);
            self.0.scan(a, from, to, &mut |seq, body| {
                if seq == last {
                    return Ok(std::ops::ControlFlow::Break(()));
                }
                f(seq, body)
            })
        }
        fn agents(&self) -> Result<Vec<accord_core::AgentId>, accord_store::StoreError> {
            self.0.agents()
        }
        fn record_checkpoint(
            &mut self,
            a: &accord_core::AgentId,
            s: u64,
            n: &[u8],
        ) -> Result<(), accord_store::StoreError> {
            self.0.record_checkpoint(a, s, n)
        }
        fn checkpoints(
            &self,
            a: &accord_core::AgentId,
        ) -> Result<Vec<(u64, Vec<u8>)>, accord_store::StoreError> {
            self.0.checkpoints(a)
        }
    }
    let result = std::panic::catch_unwind(|| {
        conformance::run(&mut || Forgetful(MemoryStore::new()));
    });
    let msg = result.expect_err("a forgetful store must fail");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("event store conformance"), "{msg}");
}
