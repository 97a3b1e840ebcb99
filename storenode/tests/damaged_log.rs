//! A store whose raft log is damaged refuses to start, naming the segment
//! file and offset, and `storenode check-log` reports the damage (and a
//! torn tail) without starting the store.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use storenode::engine::log_engine::check::{self, RecordLine};
use storenode::engine::{LOG_DIR, LogEngine};

/// Five records in the raft log under `data`, the last one lazy.
fn write_log(data: &Path) -> Vec<RecordLine> {
    let dir = data.join(LOG_DIR);
    {
        let log = LogEngine::open(&dir).unwrap();
        for i in 1..=5u64 {
            let b = log.batch();
            b.append(1, i, &[i as u8; 64]);
            b.commit(i < 5).unwrap();
        }
    }
    let mut recs = Vec::new();
    check::check(&dir, |r| recs.push(r.clone())).unwrap();
    assert_eq!(recs.len(), 5);
    recs
}

fn segment(data: &Path) -> std::path::PathBuf {
    let dir = data.join(LOG_DIR);
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "raftlog"))
        .unwrap();
    dir.join(name)
}

fn flip(file: &Path, at: u64) {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(file).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0xff], at).unwrap();
}

fn zero(file: &Path, at: u64, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all_at(&vec![0; len as usize], at).unwrap();
}

fn run(args: &[&str], data: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_storenode")).args(args).arg("--data-dir").arg(data).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The store must stop at the log, before it dials PD (nothing listens on
/// port 1).
const SERVE: [&str; 6] = ["--pd", "127.0.0.1:1", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"];

#[test]
fn a_damaged_log_refuses_the_start_and_the_check_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let recs = write_log(&data);
    let seg = segment(&data);
    flip(&seg, recs[1].at + 20);
    let at = format!("{} at byte {}", seg.display(), recs[1].at);

    let (code, out, err) = run(&["check-log"], &data);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("DAMAGED") && out.contains(&at), "{out}");

    let (code, _, err) = run(&SERVE, &data);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&at), "{err}");
    assert!(err.contains("storenode check-log --data-dir"), "the way on is named: {err}");
}

#[test]
fn a_torn_tail_is_reported_and_absolute_consistency_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let recs = write_log(&data);
    let seg = segment(&data);
    let last = &recs[4];
    zero(&seg, last.at + last.len / 2, last.len - last.len / 2);

    let (code, out, err) = run(&["check-log", "--records"], &data);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(&format!("torn tail at byte {}", last.at)), "{out}");
    assert_eq!(out.matches("record at byte").count(), 4, "{out}");

    let (code, _, err) = run(
        &["--recovery-mode", "absolute-consistency", SERVE[0], SERVE[1], SERVE[2], SERVE[3], SERVE[4], SERVE[5]],
        &data,
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{} at byte {}", seg.display(), last.at)) && err.contains("absolute-consistency"),
        "{err}"
    );
}
