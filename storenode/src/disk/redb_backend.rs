//! redb's data file on a [`Disk`](super::Disk) other than the real one: a
//! [`redb::StorageBackend`] over a disk [`File`].
//!
//! On the real disk redb opens its file itself (with its own file lock);
//! this backend is only for the write-back disk, where the raft log's lock
//! file already keeps a second process out of the store's directory.

use std::io;
use std::os::unix::fs::FileExt;

use super::File;

#[derive(Debug)]
pub struct RedbFile(File);

impl RedbFile {
    pub fn new(file: File) -> RedbFile {
        RedbFile(file)
    }
}

impl redb::StorageBackend for RedbFile {
    fn len(&self) -> io::Result<u64> {
        self.0.size()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }
}
