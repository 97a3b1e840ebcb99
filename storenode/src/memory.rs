//! Handing freed memory back to the system.
//!
//! A region's raft group reserves a few hundred KiB in buffers of 100-800
//! KiB each, which the allocator would keep once the group shuts down
//! ([`crate::node::dormancy`]): a store whose regions went dormant would go
//! on holding what they used while awake. Two things give it back: buffers
//! of 64 KiB and more get pages of their own, returned whole when freed
//! ([`tune_allocator`]), and a trim after each batch of shutdowns returns
//! the free pages left in the heap ([`release_free_memory`]).

/// Allocations from this size up are mapped on their own (glibc's
/// `M_MMAP_THRESHOLD`; by default it starts at 128 KiB and grows with
/// every such block freed, up to 32 MiB, after which raft groups'
/// buffers land in the heap, between long-lived small allocations that
/// keep their pages resident once the buffers are freed).
const MMAP_THRESHOLD: i32 = 64 << 10;

/// Sets the allocator up for groups that come and go: call it first thing
/// in `main`, before other threads start.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation parameters; called
    // before any other thread allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

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
