//! Stores report the size of the file system holding their data directory
//! to PD, and a store started with a `capacity` reports that instead;
//! `pdctl store list` shows both in JSON and in human units.

use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::{pdctl, phase, wait_for};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
/// Store 3's setting: far below any real disk, so the override shows.
const SMALL_CAPACITY: u64 = 64 << 20;
const KEYS: usize = 200;

/// (store id, capacity, available, used) from `pdctl -o json store list`,
/// once every store has reported a capacity.
fn reported(ep: &str, stores: usize) -> Option<Vec<(u64, u64, u64, u64)>> {
    let (code, out, err) = pdctl(&["--pd", ep, "-o", "json", "store", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    let json: Value = serde_json::from_str(&out).expect("pdctl prints JSON");
    let rows: Vec<(u64, u64, u64, u64)> = json["stores"]
        .as_array()
        .expect("a list of stores")
        .iter()
        .map(|s| {
            let n = |f: &str| s["status"][f].as_u64().unwrap_or(0);
            (s["store"]["id"].as_u64().unwrap_or(0), n("capacity"), n("available"), n("used_size"))
        })
        .collect();
    (rows.len() == stores && rows.iter().all(|r| r.1 > 0 && r.3 > 0)).then_some(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stores_report_their_disk_and_the_capacity_setting_overrides_it() {
    phase("three stores, the third with capacity 64MiB through its environment");
    let cluster = Cluster::start_with_env(1, 3, &[], &[], |i| {
        if i == 3 { vec![("STORE_CAPACITY".into(), "64MiB".into())] } else { Vec::new() }
    })
    .await;
    let small = cluster.stores[2].store_id;
    let ep = cluster.pd_endpoints().join(",");

    phase("write and read some keys");
    let client = cluster.client().await;
    for i in 0..KEYS {
        client.put(format!("key{i:04}").as_bytes(), &[7u8; 512]).await.expect("put");
    }
    for i in 0..KEYS {
        assert!(client.get(format!("key{i:04}").as_bytes()).await.expect("get").is_some());
    }

    phase("every store reports capacity and available; the small one its setting");
    let rows = wait_for("every store to report its space", WAIT, || async { reported(&ep, 3) }).await;
    for (id, capacity, available, used) in rows {
        assert!(available > 0 && available <= capacity, "store {id}: {available} of {capacity}");
        if id == small {
            assert_eq!(capacity, SMALL_CAPACITY, "store {id} honours its capacity setting");
            assert!(available <= capacity - used, "store {id}: available {available} counts its {used} used bytes");
        } else {
            assert!(capacity > SMALL_CAPACITY, "store {id} reports its disk: {capacity}");
        }
    }

    phase("the table prints them in human units");
    let (code, out, err) = pdctl(&["--pd", &ep, "store", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    let header = out.lines().next().unwrap_or("");
    assert!(header.contains("CAPACITY") && header.contains("AVAILABLE"), "{out}");
    let small_row = out.lines().find(|l| l.starts_with(&format!("{small} "))).unwrap_or_else(|| panic!("{out}"));
    assert!(small_row.contains("64.0 MiB"), "{small_row}");
}
