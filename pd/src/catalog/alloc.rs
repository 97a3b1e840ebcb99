//! The id allocator: store, region and peer ids share one space.

use super::{CommandOutcome, MAX_ALLOC_BATCH, RouteCatalog};
use crate::error::{PdError, Result};

impl RouteCatalog {
    pub(super) fn alloc_ids(&mut self, count: u32) -> Result<CommandOutcome> {
        if count == 0 || count > MAX_ALLOC_BATCH {
            return Err(PdError::InvalidArgument(format!("id count must be 1..={MAX_ALLOC_BATCH}, got {count}")));
        }
        let first = self.next_id;
        self.next_id =
            first.checked_add(u64::from(count)).ok_or_else(|| PdError::InvalidArgument("id space exhausted".into()))?;
        self.dirty.meta = true;
        Ok(CommandOutcome::Ids { first, count })
    }
}
