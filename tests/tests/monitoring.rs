//! Every PromQL expression in the Grafana dashboards and the alert rules
//! passes promtool and returns data from a real Prometheus (Debian's
//! `prometheus` package) scraping a running cluster under load.
//!
//! Skipped, with the reason printed, where `prometheus` or `promtool` is not
//! installed (CI installs them).
//!
//! Without Prometheus, every metric the expressions select, and every label
//! value they match on, is checked against PD's and the storage node's
//! metric registries as `/metrics` serves them from the start.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster_tests::cluster::Cluster;
use cluster_tests::{free_port, have_program, http_get, phase, url_encode, wait_for};

const WAIT: Duration = Duration::from_secs(60);

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The expressions to check: dashboards' targets as they are; alert rules
/// without their final comparison (`<query> <op> <number>`), since a healthy
/// cluster makes the comparison itself come back empty.
fn expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(deploy().join("grafana/dashboards")).expect("dashboards dir") {
        let path = entry.expect("entry").path();
        let dash: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        for panel in dash["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let name = format!("{} / {}", path.file_name().unwrap().to_string_lossy(), panel["title"]);
                out.push((name, target["expr"].as_str().expect("expr").to_string()));
            }
        }
    }
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(deploy().join("prometheus/rules.yml")).expect("rules"))
            .expect("yaml");
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            let words: Vec<&str> = expr.rsplitn(3, ' ').collect();
            assert!(
                words.len() == 3
                    && ["==", "!=", ">", "<", ">=", "<="].contains(&words[1])
                    && words[0].parse::<f64>().is_ok(),
                "rule expression {expr:?} is not \"<query> <comparison> <number>\""
            );
            out.push((format!("rule {}", rule["alert"].as_str().unwrap_or("?")), words[2].to_string()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboards_and_alerts_query_real_data() {
    if !have_program("prometheus") || !have_program("promtool") {
        eprintln!("SKIPPED: prometheus/promtool not installed (apt-get install prometheus)");
        return;
    }
    phase("promtool accepts the alert rules");
    let out =
        Command::new("promtool").arg("check").arg("rules").arg(deploy().join("prometheus/rules.yml")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    phase("a cluster under load");
    let cluster = Cluster::start(1, 3, &[]).await;
    let client = Arc::new(cluster.client().await);
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("load{}", i % 500).into_bytes();
                client.put(&k, b"value").await.expect("put");
                client.get(&k).await.expect("get");
                client.scan(b"load", b"loae", 5).await.expect("scan");
                i += 1;
            }
        })
    };

    phase("Prometheus scraping PD and every store");
    let dir = tempfile::tempdir().unwrap();
    let pd_http = cluster.pd[0].http();
    let stores: Vec<String> = cluster.stores.iter().map(|s| format!("\"{}\"", s.http())).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: pd\n    static_configs:\n      - targets: [\"{pd_http}\"]\n  - job_name: storenode\n    static_configs:\n      - targets: [{}]\n",
        deploy().join("prometheus/rules.yml").display(),
        stores.join(", ")
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let out = Command::new("promtool").arg("check").arg("config").arg(&config_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let port = free_port();
    let web = format!("127.0.0.1:{port}");
    let _prom = KillOnDrop(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus"),
    );

    phase("every expression returns data");
    for (name, expr) in expressions() {
        let path = format!("/api/v1/query?query={}", url_encode(&expr));
        let web = web.clone();
        let last = wait_for(&format!("data for {name}: {expr}"), WAIT, || {
            let (web, path, name, expr) = (web.clone(), path.clone(), name.clone(), expr.clone());
            async move {
                let (status, body) = http_get(&web, &path).await.ok()?;
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                assert_ne!(status, 400, "{name}: Prometheus rejects {expr}: {body}");
                let n = v["data"]["result"].as_array()?.len();
                (v["status"] == "success" && n > 0).then_some(n)
            }
        })
        .await;
        eprintln!("ok: {name}: {last} series");
    }
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load");
}

/// A series selector in a PromQL expression: the metric name and the label
/// values it asks for with `=` or `=~` (alternatives of plain words).
#[derive(Debug)]
struct Selector {
    metric: String,
    labels: Vec<(String, String)>,
}

/// PromQL words that are neither metric names nor functions.
const KEYWORDS: [&str; 11] =
    ["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"];

/// Aggregations, which may take `by (...)` before their argument.
const AGGREGATIONS: [&str; 12] =
    ["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile"];

/// The series selectors of `expr`: names outside label lists, `{...}`
/// matchers and `[...]` ranges that do not call a function.
fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '[' {
            i = chars[i..].iter().position(|&c| c == ']').map_or(chars.len(), |p| i + p + 1);
            continue;
        }
        if c.is_ascii_digit() {
            // A number, with any exponent or unit letters it carries.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut next = i;
        while next < chars.len() && chars[next] == ' ' {
            next += 1;
        }
        if KEYWORDS.contains(&word.as_str()) {
            // `by (a, b)` and the like: a list of labels, not of metrics.
            if chars.get(next) == Some(&'(') && ["by", "without", "on", "ignoring"].contains(&word.as_str()) {
                i = chars[next..].iter().position(|&c| c == ')').map_or(chars.len(), |p| next + p + 1);
            }
            continue;
        }
        if chars.get(next) == Some(&'(') || AGGREGATIONS.contains(&word.as_str()) {
            continue;
        }
        let mut labels = Vec::new();
        if chars.get(i) == Some(&'{') {
            let end = chars[i..].iter().position(|&c| c == '}').map_or(chars.len(), |p| i + p);
            let body: String = chars[i + 1..end].iter().collect();
            for matcher in body.split(',') {
                let (label, op, value) = if let Some((l, v)) = matcher.split_once("=~") {
                    (l, "=~", v)
                } else if let Some((l, v)) = matcher.split_once("!=").or_else(|| matcher.split_once("!~")) {
                    (l, "!", v)
                } else if let Some((l, v)) = matcher.split_once('=') {
                    (l, "=", v)
                } else {
                    panic!("matcher {matcher:?} in {expr:?} is not label<op>\"value\"");
                };
                let value = value.trim().trim_matches('"');
                match op {
                    "=" => labels.push((label.trim().to_string(), value.to_string())),
                    "=~" => labels.extend(value.split('|').map(|v| (label.trim().to_string(), v.to_string()))),
                    _ => {}
                }
            }
            i = end + 1;
        }
        out.push(Selector { metric: word, labels });
    }
    out
}

#[test]
fn selectors_are_found_past_functions_label_lists_and_ranges() {
    let found = selectors(
        "histogram_quantile(0.5, sum by (le, kind) (rate(pd_x_bucket{kind=~\"a|b\", job!=\"c\"}[5m]))) / 1e3 + on(instance) store_y",
    );
    let got: Vec<(&str, Vec<(&str, &str)>)> = found
        .iter()
        .map(|s| (s.metric.as_str(), s.labels.iter().map(|(l, v)| (l.as_str(), v.as_str())).collect()))
        .collect();
    assert_eq!(got, vec![("pd_x_bucket", vec![("kind", "a"), ("kind", "b")]), ("store_y", vec![])]);
}

#[test]
fn every_selected_metric_and_label_value_is_exported() {
    pd::metrics::init();
    pd::operator::init_metrics();
    storenode::metrics::init();
    let exported = format!("{}{}", pd::metrics::render(), storenode::metrics::render());
    let series: Vec<&str> = exported.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let mut checked = 0;
    for (name, expr) in expressions() {
        for sel in selectors(&expr) {
            // Prometheus' own series for each scrape target.
            if sel.metric == "up" {
                continue;
            }
            let of_metric: Vec<&&str> =
                series.iter().filter(|l| l.split(['{', ' ']).next() == Some(sel.metric.as_str())).collect();
            assert!(!of_metric.is_empty(), "{name}: {expr}: no registry exports {}", sel.metric);
            for (label, value) in &sel.labels {
                let matcher = format!("{label}=\"{value}\"");
                assert!(
                    of_metric.iter().any(|l| l.contains(&matcher)),
                    "{name}: {expr}: {} has no series with {matcher}",
                    sel.metric
                );
            }
            checked += 1;
        }
    }
    // The dashboards' panels the operators and snapshots rely on.
    for metric in [
        "pd_operators_finished_total",
        "pd_operators_created_total",
        "pd_operators_running",
        "store_snapshots_total",
        "store_snapshot_bytes_total",
        "store_snapshot_seconds_bucket",
        "pd_operator_step_seconds_bucket",
    ] {
        assert!(
            expressions()
                .iter()
                .any(|(name, expr)| name.contains(".json / ") && selectors(expr).iter().any(|s| s.metric == metric)),
            "no dashboard panel queries {metric}"
        );
    }
    assert!(checked > 30, "only {checked} selectors found");
}
