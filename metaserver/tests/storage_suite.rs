//! openraft's own storage conformance suite, run against the RocksDB log store and state
//! machine (vote and log persistence, truncation, purging, applied state, snapshots).

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use raftfs_metaserver::journal::log_store::LogStore;
use raftfs_metaserver::journal::state_machine::StateMachine;
use raftfs_metaserver::journal::{MemberId, TypeConfig};
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<MemberId>> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let log = LogStore::open(&dir.path().join("log"), &Default::default())
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        let sm = StateMachine::open(dir.path(), Default::default())
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(RocksBuilder).expect("openraft storage suite");
}
