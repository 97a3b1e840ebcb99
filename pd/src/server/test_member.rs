//! One real PD member for a test: on OS-chosen ports in a temporary
//! directory, leading its one-member group, with fake stores registered.

use std::time::Duration;

use proto::metapb;

use super::PdServer;
use crate::client::PdClient;
use crate::config::PdConfig;

/// How long a test waits for the member to lead, and its client for an answer.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A member's config under `dir`, on port 0, to adjust before [`start`].
pub fn config(dir: &tempfile::TempDir) -> PdConfig {
    PdConfig {
        data_dir: dir.path().join("pd"),
        grpc_addr: "127.0.0.1:0".into(),
        http_addr: "127.0.0.1:0".into(),
        ..PdConfig::default()
    }
}

/// Starts a member with `config`, waits until it leads, and returns it with
/// a client.
pub async fn start(config: PdConfig) -> (PdServer, PdClient) {
    config.validate().expect("valid config");
    let server = PdServer::start(config).await.expect("member starts");
    server
        .ctx
        .raft
        .wait(Some(DEADLINE))
        .metrics(|m| m.current_leader == Some(1), "the only member leads")
        .await
        .expect("leader");
    let pd = PdClient::new(std::slice::from_ref(&server.advertise_grpc_addr)).expect("client").with_deadline(DEADLINE);
    (server, pd)
}

/// Registers a store that never connects (its address is never dialed).
pub async fn add_store(pd: &PdClient) -> u64 {
    let id = pd.alloc_id().await.expect("alloc id");
    let store = metapb::Store { id, address: format!("127.0.0.1:{}", 20000 + id), ..Default::default() };
    pd.put_store(store).await.expect("put store");
    id
}
