use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::*;
use crate::disk::{Disk, File};

fn disk(model: PowerCut, seed: u64) -> Disk {
    Disk::WriteBack(Arc::new(WriteBack::new(PowerCutConfig { model, seed, skip_log_sync: false })))
}

/// What survives the process: the real file, read past every cache.
fn on_disk(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

#[test]
fn a_cut_keeps_what_was_synced_and_loses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let disk = disk(PowerCut::All, 1);
    let f = disk.open(&path, Open::Create).unwrap();
    f.write_all_at(b"synced", 0).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b"SYNCED and more", 0).unwrap();
    let mut seen = vec![0; 15];
    f.read_exact_at(&mut seen, 0).unwrap();
    assert_eq!(seen, b"SYNCED and more", "the process reads its own writes");
    assert_eq!(f.size().unwrap(), 15);
    let again = disk.open(&path, Open::Existing).unwrap();
    let mut other = vec![0; 15];
    again.read_exact_at(&mut other, 0).unwrap();
    assert_eq!(other, b"SYNCED and more", "a second handle shares the pages");
    drop((f, again, disk));
    assert_eq!(on_disk(&path), b"synced", "the cut kept only the synced bytes");
}

#[test]
fn a_closed_file_keeps_its_dirty_pages_until_synced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let disk = disk(PowerCut::All, 1);
    disk.open(&path, Open::Create).unwrap().write_all_at(b"written", 0).unwrap();
    // Another open sweeps forgotten files: this one must not be.
    drop(disk.open(&dir.path().join("g"), Open::Create).unwrap());
    let f = disk.open(&path, Open::Existing).unwrap();
    let mut seen = vec![0; 7];
    f.read_exact_at(&mut seen, 0).unwrap();
    assert_eq!(seen, b"written");
    assert_eq!(on_disk(&path), b"");
    f.sync_all().unwrap();
    assert_eq!(on_disk(&path), b"written");
}

#[test]
fn lengths_change_on_disk_only_when_synced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, vec![7u8; 10_000]).unwrap();
    let disk = disk(PowerCut::All, 1);
    let f = disk.open(&path, Open::Existing).unwrap();
    f.set_len(100).unwrap();
    f.set_len(5_000).unwrap();
    let mut seen = vec![1; 5_000];
    f.read_exact_at(&mut seen, 0).unwrap();
    assert!(seen[..100].iter().all(|&b| b == 7) && seen[100..].iter().all(|&b| b == 0), "a shrink zeroes");
    assert_eq!(on_disk(&path).len(), 10_000, "not synced: the old length stays");
    f.sync_data().unwrap();
    assert_eq!(on_disk(&path), seen);
    // Truncating on open is a length change like any other.
    let t = disk.open(&path, Open::Truncate).unwrap();
    assert_eq!(t.size().unwrap(), 0);
    drop((f, t, disk));
    assert_eq!(on_disk(&path), seen, "the unsynced truncation was lost");
}

#[test]
fn cursors_read_write_and_seek_like_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk(PowerCut::All, 1);
    let mut f = disk.open(&dir.path().join("f"), Open::Create).unwrap();
    f.write_all(b"hello ").unwrap();
    f.write_all(b"world").unwrap();
    assert_eq!(f.seek(SeekFrom::Start(6)).unwrap(), 6);
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "world");
    f.rewind().unwrap();
    let mut all = Vec::new();
    f.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"hello world");
}

/// Writes `pages` pages of `fill` over a synced file of zeros, unsynced,
/// and returns what a cut leaves.
fn cut_after_overwrite(model: PowerCut, seed: u64, pages: u64, fill: u8) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let disk = disk(model, seed);
    let f = disk.open(&path, Open::Create).unwrap();
    f.write_all_at(&vec![0; (pages * PAGE) as usize], 0).unwrap();
    f.sync_data().unwrap();
    for page in 0..pages {
        f.write_all_at(&vec![fill; PAGE as usize], page * PAGE).unwrap();
    }
    drop((f, disk));
    on_disk(&path)
}

#[test]
fn the_pages_model_keeps_a_random_subset_of_whole_pages() {
    let after = cut_after_overwrite(PowerCut::Pages, 7, 64, 0xAB);
    let kept: Vec<bool> = after.chunks(PAGE as usize).map(|p| p[0] == 0xAB).collect();
    for p in after.chunks(PAGE as usize) {
        assert!(p.iter().all(|&b| b == p[0]), "a page is written back whole or not at all");
    }
    let n = kept.iter().filter(|&&k| k).count();
    assert!(n > 0 && n < kept.len(), "some pages but not all survived: {n} of {}", kept.len());
    assert_eq!(after, cut_after_overwrite(PowerCut::Pages, 7, 64, 0xAB), "the seed decides what survives");
}

#[test]
fn the_torn_page_model_cuts_the_last_page_at_a_sector() {
    let after = cut_after_overwrite(PowerCut::TornPage, 3, 64, 0xCD);
    let torn: Vec<&[u8]> = after.chunks(PAGE as usize).filter(|p| p[0] == 0xCD && p[PAGE as usize - 1] == 0).collect();
    assert!(!torn.is_empty(), "some page was torn");
    for p in torn {
        let written = p.iter().take_while(|&&b| b == 0xCD).count();
        assert_eq!(written as u64 % SECTOR, 0, "torn at a sector boundary");
        assert!(p[written..].iter().all(|&b| b == 0), "the rest of the page is the old bytes");
    }
}

#[test]
fn the_all_model_keeps_nothing_unsynced() {
    let after = cut_after_overwrite(PowerCut::All, 7, 64, 0xAB);
    assert!(after.iter().all(|&b| b == 0));
}

#[test]
fn a_removed_or_replaced_file_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let disk = disk(PowerCut::All, 1);
    let fa = disk.open(&a, Open::Create).unwrap();
    fa.write_all_at(b"new", 0).unwrap();
    fa.sync_all().unwrap();
    let fb = disk.open(&b, Open::Create).unwrap();
    fb.write_all_at(b"old, unsynced", 0).unwrap();
    drop(fb);
    disk.rename(&a, &b).unwrap();
    disk.sync_dir(dir.path()).unwrap();
    let mut f = disk.open(&b, Open::Existing).unwrap();
    let mut seen = Vec::new();
    f.read_to_end(&mut seen).unwrap();
    assert_eq!(seen, b"new");
    disk.remove_file(&b).unwrap();
    assert!(!b.exists());
}

#[test]
fn the_settings_come_from_the_environment_or_refuse_to_start() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    assert_eq!(PowerCutConfig::from_env(env(&[])).unwrap(), None);
    assert_eq!(
        PowerCutConfig::from_env(env(&[("STORE_POWER_CUT_DISK", "torn-page"), ("STORE_POWER_CUT_SEED", "9")])).unwrap(),
        Some(PowerCutConfig { model: PowerCut::TornPage, seed: 9, skip_log_sync: false })
    );
    let e = PowerCutConfig::from_env(env(&[("STORE_FAILPOINT_SKIP_LOG_SYNC", "1")])).unwrap_err();
    assert!(e.to_string().contains("needs STORE_POWER_CUT_DISK"), "{e}");
    let e = PowerCutConfig::from_env(env(&[("STORE_POWER_CUT_DISK", "some")])).unwrap_err();
    assert!(e.to_string().contains("expected one of"), "{e}");
}

#[test]
fn the_real_disk_is_plain_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let f = Disk::Std.open(&path, Open::Create).unwrap();
    assert!(matches!(f, File::Std(_)));
    f.write_all_at(b"x", 0).unwrap();
    assert_eq!(on_disk(&path), b"x", "in the kernel's cache at once");
}

#[test]
fn redb_on_the_write_back_disk_keeps_durable_commits_and_loses_lazy_ones() {
    use redb::{Durability, ReadableDatabase, TableDefinition};
    const T: TableDefinition<&str, u64> = TableDefinition::new("t");
    let put = |db: &redb::Database, k: &str, v: u64, durability: Durability| {
        let mut tx = db.begin_write().unwrap();
        tx.set_durability(durability).unwrap();
        tx.open_table(T).unwrap().insert(k, v).unwrap();
        tx.commit().unwrap();
    };
    let get = |db: &redb::Database, k: &str| {
        let tx = db.begin_read().unwrap();
        tx.open_table(T).unwrap().get(k).unwrap().map(|v| v.value())
    };
    for (model, seed) in [(PowerCut::All, 1), (PowerCut::Pages, 2), (PowerCut::TornPage, 3)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let disk = disk(model, seed);
            let db = disk.open_redb(&path, 1 << 20).unwrap();
            put(&db, "durable", 1, Durability::Immediate);
            for i in 0..50 {
                put(&db, "lazy", i, Durability::None);
            }
            assert_eq!(get(&db, "lazy"), Some(49), "{model}: the process reads its lazy commits");
            // The cut: the process's pages go, nothing is flushed on drop.
            std::mem::forget(db);
        }
        let db = disk(model, seed).open_redb(&path, 1 << 20).unwrap();
        assert_eq!(get(&db, "durable"), Some(1), "{model}");
        assert_eq!(get(&db, "lazy"), None, "{model}: a lazy commit is lost with the pages");
    }
}
