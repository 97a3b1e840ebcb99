//! Names on the write-back disk: a file's creation, removal or rename is
//! durable only once its directory is synced.
//!
//! The change is made in the real directory at once (the process sees it,
//! and it must survive `kill -9` for the restart to see anything), and its
//! undo is journaled next to it, durably, in the directory's
//! [`UNDO_DIR`]. A sync of the directory forgets the undo. At a cut
//! ([`undo_unsynced`], run before the store opens anything) every change
//! still journaled is undone, newest first: what a power cut would have
//! lost.
//!
//! The undo is journaled after the change: a kill in between leaves the
//! change without its undo, durable, which a real file system may also do.
//! A removed or replaced file is kept as a hard link in [`UNDO_DIR`] until
//! the directory is synced, so its undo can bring it back.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a directory's journal of unsynced name changes lives.
pub const UNDO_DIR: &str = ".power-cut-undo";
const JOURNAL: &str = "journal";

/// One change's undo, a line of the journal.
#[derive(Debug, PartialEq, Eq)]
enum Undo {
    /// A creation: remove the file.
    Remove(String),
    /// A removal or replacement: put the kept link back under the name.
    Restore { kept: String, name: String },
    /// A rename: rename back.
    Rename { from: String, to: String },
}

impl Undo {
    fn line(&self) -> String {
        match self {
            Undo::Remove(n) => format!("remove\t{n}\n"),
            Undo::Restore { kept, name } => format!("restore\t{kept}\t{name}\n"),
            Undo::Rename { from, to } => format!("rename\t{from}\t{to}\n"),
        }
    }

    fn parse(line: &str) -> Option<Undo> {
        let mut f = line.split('\t');
        let u = match (f.next()?, f.next()?, f.next()) {
            ("remove", n, None) => Undo::Remove(n.into()),
            ("restore", kept, Some(name)) => Undo::Restore { kept: kept.into(), name: name.into() },
            ("rename", from, Some(to)) => Undo::Rename { from: from.into(), to: to.into() },
            _ => return None,
        };
        f.next().is_none().then_some(u)
    }

    fn apply(&self, dir: &Path) -> io::Result<()> {
        let gone_is_fine = |r: io::Result<()>| match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        match self {
            Undo::Remove(n) => gone_is_fine(std::fs::remove_file(dir.join(n))),
            Undo::Restore { kept, name } => {
                gone_is_fine(std::fs::rename(dir.join(UNDO_DIR).join(kept), dir.join(name)))
            }
            Undo::Rename { from, to } => gone_is_fine(std::fs::rename(dir.join(from), dir.join(to))),
        }
    }
}

/// The journals of one process's write-back disk.
#[derive(Debug, Default)]
pub struct Names {
    /// One change journaled at a time, so lines never interleave.
    lock: Mutex<()>,
    kept: AtomicU64,
}

fn split(path: &Path) -> io::Result<(&Path, String)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, format!("{}: not a file name", path.display()));
    let dir = path.parent().ok_or_else(bad)?;
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?;
    if name.contains(['\t', '\n']) {
        return Err(bad());
    }
    Ok((dir, name.to_string()))
}

fn sync_real_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Names {
    fn journal(&self, dir: &Path, undo: &Undo) -> io::Result<()> {
        let undo_dir = dir.join(UNDO_DIR);
        if !undo_dir.exists() {
            std::fs::create_dir(&undo_dir)?;
            sync_real_dir(dir)?;
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(undo_dir.join(JOURNAL))?;
        f.write_all(undo.line().as_bytes())?;
        f.sync_data()
    }

    /// Keeps `path`'s file as a link in its directory's [`UNDO_DIR`].
    fn keep(&self, dir: &Path, path: &Path) -> io::Result<String> {
        let undo_dir = dir.join(UNDO_DIR);
        if !undo_dir.exists() {
            std::fs::create_dir(&undo_dir)?;
            sync_real_dir(dir)?;
        }
        let kept = format!("{}-{}.kept", std::process::id(), self.kept.fetch_add(1, Ordering::Relaxed));
        std::fs::hard_link(path, undo_dir.join(&kept))?;
        Ok(kept)
    }

    /// Journals the creation of `path`, just made.
    pub(super) fn created(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = split(path)?;
        let _one = self.lock.lock().unwrap();
        self.journal(dir, &Undo::Remove(name))
    }

    /// Removes `path`, journaling how to bring it back.
    pub(super) fn remove(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = split(path)?;
        let _one = self.lock.lock().unwrap();
        let kept = self.keep(dir, path)?;
        std::fs::remove_file(path)?;
        self.journal(dir, &Undo::Restore { kept, name })
    }

    /// Renames `from` to `to`, journaling how to undo it. Across
    /// directories the rename is durable at once (nothing here needs one).
    pub(super) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let ((from_dir, from_name), (to_dir, to_name)) = (split(from)?, split(to)?);
        if from_dir != to_dir {
            return std::fs::rename(from, to);
        }
        let _one = self.lock.lock().unwrap();
        let replaced = if to.exists() { Some(self.keep(to_dir, to)?) } else { None };
        std::fs::rename(from, to)?;
        // Undone newest first: the rename back, then the replaced file.
        if let Some(kept) = replaced {
            self.journal(to_dir, &Undo::Restore { kept, name: to_name.clone() })?;
        }
        self.journal(to_dir, &Undo::Rename { from: to_name, to: from_name })
    }

    /// `dir` was synced: its name changes so far are durable.
    pub(super) fn synced(&self, dir: &Path) -> io::Result<()> {
        let _one = self.lock.lock().unwrap();
        forget(&dir.join(UNDO_DIR))
    }
}

/// Drops a journal and its kept links: the journal first, so a kill in
/// between leaves only links no journal line names.
fn forget(undo_dir: &Path) -> io::Result<()> {
    if !undo_dir.exists() {
        return Ok(());
    }
    let journal = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(undo_dir.join(JOURNAL))?;
    journal.sync_data()?;
    for e in std::fs::read_dir(undo_dir)? {
        let e = e?;
        if e.file_name() != JOURNAL {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// Undoes, newest first, every name change under `root` (and the
/// directories below it) whose directory was never synced, as a power cut
/// would have lost it. Returns how many changes were undone.
///
/// # Errors
///
/// I/O failures.
pub fn undo_unsynced(root: &Path) -> io::Result<usize> {
    let mut undone = 0;
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries {
            let e = e?;
            if e.file_type()?.is_dir() && e.file_name() != UNDO_DIR {
                dirs.push(e.path());
            }
        }
        let undo_dir = dir.join(UNDO_DIR);
        let Ok(text) = std::fs::read(undo_dir.join(JOURNAL)) else { continue };
        let text = String::from_utf8_lossy(&text);
        // A line cut short by a kill has no newline and no change behind
        // it that was not already made durable by its absence.
        let undos: Vec<Undo> = text.split_inclusive('\n').filter_map(|l| Undo::parse(l.strip_suffix('\n')?)).collect();
        for u in undos.iter().rev() {
            u.apply(&dir)?;
            undone += 1;
        }
        sync_real_dir(&dir)?;
        forget(&undo_dir)?;
    }
    Ok(undone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_line_reads_back() {
        for u in [
            Undo::Remove("a".into()),
            Undo::Restore { kept: "1-2.kept".into(), name: "b".into() },
            Undo::Rename { from: "c".into(), to: "d".into() },
        ] {
            assert_eq!(Undo::parse(u.line().trim_end_matches('\n')), Some(u));
        }
        assert_eq!(Undo::parse("rename\tonly-one"), None);
    }

    #[test]
    fn unsynced_names_are_undone_and_synced_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let names = Names::default();
        let (a, b, c) = (d.join("a"), d.join("b"), d.join("c"));
        std::fs::write(&a, b"a").unwrap();
        names.created(&a).unwrap();
        std::fs::write(&b, b"old b").unwrap();
        names.created(&b).unwrap();
        names.synced(d).unwrap();
        // Unsynced from here: a new file, a removal, a rename over b.
        std::fs::write(&c, b"c").unwrap();
        names.created(&c).unwrap();
        names.remove(&a).unwrap();
        std::fs::write(d.join("tmp"), b"new b").unwrap();
        names.rename(&d.join("tmp"), &b).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"new b");
        assert_eq!(undo_unsynced(d).unwrap(), 4);
        assert_eq!(std::fs::read(&a).unwrap(), b"a", "the removal was undone");
        assert_eq!(std::fs::read(&b).unwrap(), b"old b", "the rename over b was undone");
        assert_eq!(std::fs::read(d.join("tmp")).unwrap(), b"new b", "the renamed file is back under its old name");
        assert!(!c.exists(), "the creation was undone");
        assert_eq!(undo_unsynced(d).unwrap(), 0, "nothing is undone twice");
    }
}
