//! The operator's journey with Docker: build the image, `docker compose up`,
//! every service healthy, pdctl on the host, writes and reads through a
//! store's published HTTP port, one store killed while writes go on, the
//! store restarted and caught up, `down` then `up` with the data still there.
//!
//! Skipped, with the reason printed, where no Docker engine or compose tool
//! is available (CI has both).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use cluster_tests::{binary, free_port, http_get, http_request, phase, wait_for};

const HEALTHY_WITHIN: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ok(out: &Output) -> bool {
    out.status.success()
}

/// `docker compose` (plugin) or `docker-compose` (standalone), whichever
/// works here.
fn compose_tool() -> Option<Vec<String>> {
    let plugin = Command::new("docker").args(["compose", "version"]).output();
    if plugin.as_ref().is_ok_and(ok) {
        return Some(vec!["docker".into(), "compose".into()]);
    }
    let standalone = Command::new("docker-compose").arg("version").output();
    standalone.as_ref().is_ok_and(ok).then(|| vec!["docker-compose".into()])
}

struct Compose {
    tool: Vec<String>,
    project: String,
    env: Vec<(String, String)>,
}

impl Compose {
    fn run(&self, args: &[&str]) -> Output {
        let file = root().join("deploy/docker-compose.yml");
        let out = Command::new(&self.tool[0])
            .args(&self.tool[1..])
            .arg("-f")
            .arg(&file)
            .arg("-p")
            .arg(&self.project)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run compose");
        eprintln!("compose {}: {}", args.join(" "), if ok(&out) { "ok" } else { "FAILED" });
        out
    }

    fn must(&self, args: &[&str]) {
        let out = self.run(args);
        assert!(ok(&out), "compose {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Waits until every service's container reports healthy.
    async fn wait_healthy(&self, services: usize) {
        self.wait_healthy_with(&[], services).await;
    }

    /// As [`Compose::wait_healthy`], with the services of extra profiles.
    async fn wait_healthy_with(&self, profiles: &[&str], services: usize) {
        let mut ps: Vec<&str> = profiles.iter().flat_map(|p| ["--profile", p]).collect();
        ps.extend(["ps", "-q"]);
        wait_for("every service healthy", HEALTHY_WITHIN, || async {
            let ids = String::from_utf8(self.run(&ps).stdout).ok()?;
            let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
            if ids.len() < services {
                return None;
            }
            let out = Command::new("docker")
                .args(["inspect", "--format", "{{.State.Health.Status}}"])
                .args(&ids)
                .output()
                .ok()?;
            let text = String::from_utf8(out.stdout).ok()?;
            text.lines().all(|l| l == "healthy").then_some(())
        })
        .await;
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        self.run(&["down", "-v", "--remove-orphans"]);
    }
}

async fn put(http: &str, key: &str, value: &str) {
    let (status, body) = http_request(http, "PUT", &format!("/kv/{key}"), value.as_bytes()).await.expect("http");
    assert_eq!(status, 204, "PUT {key}: {body}");
}

async fn get(http: &str, key: &str) -> Option<String> {
    let (status, body) = http_get(http, &format!("/kv/{key}")).await.expect("http");
    match status {
        200 => Some(body),
        404 => None,
        other => panic!("GET {key}: {other} {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_cluster_serves_survives_a_store_kill_and_keeps_data() {
    let docker_up = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    if !docker_up.as_ref().is_ok_and(ok) {
        eprintln!("SKIPPED: no Docker engine reachable (docker info failed)");
        return;
    }
    let Some(tool) = compose_tool() else {
        eprintln!("SKIPPED: neither `docker compose` nor `docker-compose` is installed");
        return;
    };

    phase("build the image (no base image pulled)");
    let tag = format!("kvstore:test-{}", std::process::id());
    let out = Command::new("bash").arg(root().join("deploy/docker/build.sh")).arg(&tag).output().expect("build");
    assert!(ok(&out), "image build failed:\n{}", String::from_utf8_lossy(&out.stderr));

    phase("compose up: PD and three stores, healthy");
    let ports: Vec<(String, u16)> = [
        "PD_GRPC_PORT",
        "PD_HTTP_PORT",
        "STORE1_HTTP_PORT",
        "STORE2_HTTP_PORT",
        "STORE3_HTTP_PORT",
        "STORE4_HTTP_PORT",
    ]
    .into_iter()
    .map(|k| (k.to_string(), free_port()))
    .collect();
    let port = |k: &str| ports.iter().find(|(n, _)| n == k).unwrap().1;
    let mut env: Vec<(String, String)> = ports.iter().map(|(k, p)| (k.clone(), p.to_string())).collect();
    env.push(("KVSTORE_IMAGE".into(), tag.clone()));
    let compose = Compose { tool, project: format!("kvtest{}", std::process::id()), env };
    compose.must(&["up", "-d"]);
    compose.wait_healthy(4).await;

    phase("pdctl on the host lists three Up stores");
    let pd = format!("127.0.0.1:{}", port("PD_GRPC_PORT"));
    let out = Command::new(binary("pdctl")).args(["--pd", &pd, "-o", "json", "store", "list"]).output().unwrap();
    assert!(ok(&out), "{}", String::from_utf8_lossy(&out.stderr));
    let stores: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stores["count"], 3, "{stores}");
    for s in stores["stores"].as_array().unwrap() {
        assert_eq!(s["store"]["state_name"], "Up", "{s}");
    }

    phase("write and read through the stores' HTTP ports");
    let h1 = format!("127.0.0.1:{}", port("STORE1_HTTP_PORT"));
    let h2 = format!("127.0.0.1:{}", port("STORE2_HTTP_PORT"));
    let h3 = format!("127.0.0.1:{}", port("STORE3_HTTP_PORT"));
    for i in 0..20 {
        put(&h1, &format!("before{i}"), &format!("v{i}")).await;
    }
    assert_eq!(get(&h3, "before7").await.as_deref(), Some("v7"));

    phase("kill one store: writes go on");
    compose.must(&["kill", "store3"]);
    for i in 0..20 {
        put(&h1, &format!("during{i}"), &format!("v{i}")).await;
    }
    assert_eq!(get(&h2, "during19").await.as_deref(), Some("v19"));

    phase("restart it: it catches up");
    compose.must(&["start", "store3"]);
    compose.wait_healthy(4).await;
    wait_for("store3 to hold every key", HEALTHY_WITHIN, || async {
        let (_, body) = http_get(&h3, "/status").await.ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let keys: u64 = v["regions"].as_array()?.iter().filter_map(|r| r["approximate_keys"].as_u64()).sum();
        (keys >= 40).then_some(())
    })
    .await;

    phase("down, then up: the data is still there");
    compose.must(&["down"]);
    compose.must(&["up", "-d"]);
    compose.wait_healthy(4).await;
    for i in [0, 19] {
        assert_eq!(get(&h2, &format!("before{i}")).await.as_deref(), Some(format!("v{i}").as_str()));
        assert_eq!(get(&h3, &format!("during{i}")).await.as_deref(), Some(format!("v{i}").as_str()));
    }

    phase("a fourth store joins; pdctl on the host moves a region onto it");
    compose.must(&["--profile", "fourth-store", "up", "-d", "store4"]);
    compose.wait_healthy_with(&["fourth-store"], 5).await;
    let pdctl_json = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(binary("pdctl")).args(["--pd", &pd, "-o", "json"]).args(args).output().unwrap();
        assert!(ok(&out), "pdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let fourth = wait_for("the fourth store registered", HEALTHY_WITHIN, || async {
        let stores = pdctl_json(&["store", "list"]);
        (stores["count"] == 4).then_some(())?;
        stores["stores"].as_array()?.iter().filter_map(|s| s["store"]["id"].as_u64()).max()
    })
    .await;
    let routes = pdctl_json(&["region", "list"]);
    let region = &routes["regions"][0];
    let region_id = region["id"].as_u64().expect("a region id").to_string();
    let from = region["peers"][0]["store_id"].as_u64().expect("a peer").to_string();
    let out = Command::new(binary("pdctl"))
        .args(["--pd", &pd, "region", "move", &region_id, "--from", &from, "--to", &fourth.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(ok(&out), "pdctl region move: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let shown = pdctl_json(&["region", "show", &region_id]);
    let peers = shown.to_string();
    assert!(peers.contains(&format!("\"store_id\":{fourth}")), "store {fourth} holds a peer: {shown}");
    let h4 = format!("127.0.0.1:{}", port("STORE4_HTTP_PORT"));
    assert_eq!(get(&h4, "before7").await.as_deref(), Some("v7"), "read through the fourth store");
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
}
