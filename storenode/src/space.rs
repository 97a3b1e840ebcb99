//! The capacity and available space a store reports to PD in its store
//! heartbeat: read from the file system holding its data directory, unless
//! the `capacity` setting caps it (as TiKV's `raftstore.capacity` does, so
//! stores sharing one disk, or a test store, can report a smaller size).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Total and free bytes of a file system, as `statvfs` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    pub total: u64,
    /// Free bytes an unprivileged process may use (`f_bavail`, not
    /// `f_bfree`: the root reserve is no room for the store).
    pub available: u64,
}

/// What a store reports: `capacity` and `available` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSpace {
    pub capacity: u64,
    pub available: u64,
}

/// The file system holding `dir`.
///
/// # Errors
///
/// The `statvfs` error (the directory missing, for one).
pub fn fs_space(dir: &Path) -> io::Result<FsSpace> {
    let path = CString::new(dir.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `st` a writable
    // statvfs that outlives the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Block counts are in units of the fragment size (f_frsize).
    let unit = st.f_frsize as u64;
    Ok(FsSpace {
        total: (st.f_blocks as u64).saturating_mul(unit),
        available: (st.f_bavail as u64).saturating_mul(unit),
    })
}

/// The space to report. `capacity` 0 means the whole file system. A
/// nonzero `capacity` replaces the disk size, and available is then what
/// the store may still write under it (`capacity - used`), never more than
/// the disk really has free.
pub fn store_space(fs: FsSpace, used: u64, capacity: u64) -> StoreSpace {
    if capacity == 0 {
        return StoreSpace { capacity: fs.total, available: fs.available };
    }
    StoreSpace { capacity, available: capacity.saturating_sub(used).min(fs.available) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn without_a_setting_the_disk_is_reported() {
        let fs = FsSpace { total: 100 * GIB, available: 40 * GIB };
        assert_eq!(store_space(fs, 5 * GIB, 0), StoreSpace { capacity: 100 * GIB, available: 40 * GIB });
    }

    #[test]
    fn the_setting_caps_capacity_and_available_is_what_is_left_under_it() {
        let fs = FsSpace { total: 100 * GIB, available: 40 * GIB };
        assert_eq!(store_space(fs, 3 * GIB, 10 * GIB), StoreSpace { capacity: 10 * GIB, available: 7 * GIB });
    }

    #[test]
    fn available_never_exceeds_the_disk_free_space_nor_goes_below_zero() {
        let fs = FsSpace { total: 100 * GIB, available: 2 * GIB };
        assert_eq!(store_space(fs, GIB, 10 * GIB).available, 2 * GIB);
        assert_eq!(store_space(fs, 12 * GIB, 10 * GIB).available, 0);
    }

    #[test]
    fn the_real_file_system_of_a_directory_has_room() {
        let dir = std::env::temp_dir();
        let fs = fs_space(&dir).unwrap();
        assert!(fs.total > 0 && fs.available <= fs.total, "{fs:?}");
        assert!(fs_space(&dir.join("no-such-dir-for-statvfs")).is_err());
    }
}
