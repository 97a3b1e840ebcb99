//! Handing freed memory back to the system.
//!
//! A region's raft group reserves a few hundred KiB that the allocator
//! keeps in its free lists once the group shuts down ([`crate::node::dormancy`]):
//! without a trim, a store whose regions went dormant would go on holding
//! what they used while awake.

/// Returns the allocator's free pages to the system (glibc's
/// `malloc_trim`; elsewhere nothing). Walks every arena: call it after a
/// batch of frees, off the async runtime.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only reads and rearranges the allocator's own
    // free lists, under the allocator's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
