//! One region's raft peer on this store.

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use proto::metapb;

use crate::engine::Engine;
use crate::raft::log_store::RegionLogStore;
use crate::raft::network::RegionNetwork;
use crate::raft::state_machine::{RegionShared, RegionStateMachine};
use crate::raft::{PeerNode, RegionRaft};
use crate::transport::client::Transport;

pub struct RegionPeer {
    pub raft: RegionRaft,
    pub shared: Arc<RegionShared>,
    pub log: RegionLogStore,
}

impl RegionPeer {
    /// Opens the region's stores and starts its raft node. With
    /// `initialize`, a pristine group is initialized with the region's
    /// voters (every replica of a bootstrap region does this with the same
    /// membership, which openraft allows).
    ///
    /// A region whose snapshot install was interrupted by a restart finishes
    /// it before its raft starts. `sizes` are its approximate keys and bytes
    /// when already known (a split-born region), else counted.
    ///
    /// # Errors
    ///
    /// Storage failures, an interrupted install that cannot resume, or raft
    /// refusing to start.
    pub async fn start(
        engine: Arc<Engine>,
        transport: Arc<Transport>,
        config: Arc<openraft::Config>,
        region: metapb::Region,
        peer_id: u64,
        initialize: bool,
        sizes: Option<(u64, u64)>,
    ) -> std::io::Result<Arc<RegionPeer>> {
        let log = RegionLogStore::new(region.id, engine.clone());
        let sm = RegionStateMachine::open_sized(engine, region.clone(), peer_id, sizes).await?;
        // An interrupted snapshot install, now finished, may have moved the range.
        let region = sm.shared().region();
        let shared = sm.shared();
        let network = RegionNetwork { shared: shared.clone(), transport };
        let raft = RegionRaft::new(peer_id, config, network, log.clone(), sm)
            .await
            .map_err(|e| std::io::Error::other(format!("region {} raft failed to start: {e}", region.id)))?;
        if initialize && !raft.is_initialized().await.map_err(std::io::Error::other)? {
            let voters: BTreeMap<u64, PeerNode> = region
                .peers
                .iter()
                .filter(|p| p.role == metapb::PeerRole::Voter as i32)
                .map(|p| (p.id, PeerNode { store_id: p.store_id }))
                .collect();
            if let Err(e) = raft.initialize(voters).await {
                // Already initialized by an earlier run that crashed before
                // recording it: harmless.
                tracing::debug!(region_id = region.id, error = %e, "initialize skipped");
            }
        }
        Ok(Arc::new(RegionPeer { raft, shared, log }))
    }

    pub fn region_id(&self) -> u64 {
        self.shared.region_id
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        m.state == ServerState::Leader && m.current_leader == Some(self.shared.peer_id)
    }

    /// The leader as this peer knows it: peer and store.
    pub fn leader(&self) -> Option<metapb::Peer> {
        let m = self.raft.metrics().borrow_watched().clone();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?;
        Some(metapb::Peer { id, store_id: node.store_id, role: metapb::PeerRole::Voter as i32 })
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    /// The region as raft membership says it is: the stored meta with its
    /// peers' roles taken from the current membership.
    pub fn region(&self) -> metapb::Region {
        self.shared.region()
    }
}
