//! What the heartbeat and watch streams share with the gRPC service that
//! opens them: the boxed stream type their responses travel in, and how a
//! stream PD refuses becomes a gRPC status.

use std::pin::Pin;

use futures::Stream;
use tonic::Status;

use crate::error::PdError;

pub type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send + 'static>>;

/// A refused stream as a gRPC status: the leader hint rides in metadata.
pub fn refusal(e: &PdError) -> Status {
    match e {
        PdError::NotLeader(hint) => {
            let mut s = Status::failed_precondition(e.to_string());
            if let Some(h) = hint
                && let (Ok(addr), Ok(id)) = (h.address.parse(), h.id.to_string().parse())
            {
                s.metadata_mut().insert(crate::client::LEADER_ADDR_METADATA, addr);
                s.metadata_mut().insert(crate::client::LEADER_ID_METADATA, id);
            }
            s
        }
        PdError::InvalidArgument(m) => Status::invalid_argument(m.clone()),
        other => Status::unavailable(other.to_string()),
    }
}
