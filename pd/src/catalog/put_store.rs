//! Registering a store, or updating its addresses and labels.

use std::collections::BTreeSet;

use proto::metapb;

use super::{CommandOutcome, RouteCatalog};
use crate::error::{PdError, Result};

/// Validates a `host:port` address.
///
/// # Errors
///
/// `InvalidArgument` naming `what` when the host is empty or the port is not
/// a number in 1..=65535.
pub fn validate_address(what: &str, addr: &str) -> Result<()> {
    let bad = || PdError::InvalidArgument(format!("{what} {addr:?} is not host:port"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(()),
        _ => Err(bad()),
    }
}

impl RouteCatalog {
    pub(super) fn put_store(&mut self, store: &metapb::Store) -> Result<CommandOutcome> {
        if store.id == 0 || store.id >= self.next_id {
            return Err(PdError::InvalidArgument(format!(
                "store id {} was not allocated by PD (allocate one with AllocId)",
                store.id
            )));
        }
        validate_address("store address", &store.address)?;
        if !store.http_address.is_empty() {
            validate_address("store http address", &store.http_address)?;
        }
        let mut label_keys = BTreeSet::new();
        for l in &store.labels {
            if l.key.is_empty() || !label_keys.insert(l.key.as_str()) {
                return Err(PdError::InvalidArgument(format!("label key {:?} is empty or repeated", l.key)));
            }
        }
        let existing = self.stores.get(&store.id);
        if existing.is_some_and(|s| s.state == metapb::StoreState::Tombstone as i32) {
            return Err(PdError::StoreConflict(format!("store {} is tombstoned", store.id)));
        }
        if let Some(other) = self
            .stores
            .values()
            .find(|s| s.id != store.id && s.address == store.address && s.state != metapb::StoreState::Tombstone as i32)
        {
            return Err(PdError::StoreConflict(format!(
                "address {} already belongs to store {}",
                store.address, other.id
            )));
        }
        // A store cannot change its own state by registering; state changes
        // are operator decisions.
        let state = existing.map_or(metapb::StoreState::Up as i32, |s| s.state);
        let record = metapb::Store { state, ..store.clone() };
        if existing != Some(&record) {
            self.put_store_row(record);
            self.bump_version();
        }
        Ok(CommandOutcome::StorePut { version: self.version })
    }
}
