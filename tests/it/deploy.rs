//! The files in `deploy/` tested against the real servers they configure: promtool on a real
//! node's `/metrics`, the alert rules (`promtool check rules`, `promtool test rules`) and the
//! Prometheus configuration (`promtool check config`, then a real Prometheus scraping a real
//! node with them); the Grafana dashboard's expressions against a real node's metric names; the
//! nginx site, rendered with the test's ports and paths, in front of real gateway and web nodes;
//! the systemd units through `systemd-analyze verify` and `security`.
//!
//! `scripts/test` installs the tools (Debian's `prometheus` for promtool, `nginx`); every server
//! here is started by the test on free ports, as whatever user runs the tests.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;
use testkit::RedisServer;

/// "Promptly": an event that nginx buffered would wait for a buffer to fill or the stream to
/// end, far beyond this.
const PROMPT: Duration = Duration::from_secs(5);

/// promtool's findings on the node's metrics that are accepted, with the reason in
/// deploy/README.md ("How these files are tested"): both lag gauges count milliseconds, not the
/// base unit. Renaming them is a breaking change of docs/protocol.md §9.3, left to its own
/// change. The test fails on any other finding, and when one of these goes away (drop it here).
const ACCEPTED_LINT: [&str; 2] = [
    r#"sluice_correlator_lag_milliseconds use base unit "seconds" instead of "milliseconds""#,
    r#"sluice_ingest_lag_milliseconds use base unit "seconds" instead of "milliseconds""#,
];

/// Names the alert rules and the dashboard may use beside a node's own: Prometheus' scrape
/// health and the blackbox exporter's probe result (for `/readyz`).
const EXTERNAL_METRICS: [&str; 2] = ["up", "probe_success"];

fn deploy_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(relative)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// An executable from PATH (or the sbin directories a non-root PATH may lack).
fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed (Debian package `{package}`): run scripts/test, which \
                 installs it"
            )
        })
}

/// Runs a short command to completion: (succeeded, stdout + stderr).
fn run(command: &mut StdCommand, stdin: Option<&str>) -> (bool, String) {
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `text` with `from`, which must occur exactly once, replaced: a shipped file that changed
/// shape fails here instead of being tested half-rendered.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected `{from}` exactly once in the shipped file"
    );
    text.replacen(from, to, 1)
}

fn is_root() -> bool {
    let (ok, uid) = run(StdCommand::new("id").arg("-u"), None);
    assert!(ok, "{uid}");
    uid.trim() == "0"
}

// ---- A node with traffic, and what its /metrics names -------------------------------------

/// A `sluice up` node (with its correlator) that has streamed over both transports, ingested,
/// rejected and answered a feed, so its labelled series exist. The streams stay open.
struct BusyNode {
    node: Node,
    _ws: Ws,
    _sse: Sse,
}

impl BusyNode {
    async fn start() -> BusyNode {
        let node = Node::start(NodeOptions {
            args: vec!["--log".into(), "memory".into()],
            ..NodeOptions::default()
        })
        .await;
        let mut ws = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
            .await
            .unwrap();
        assert_eq!(ws_frame(&mut ws).await["type"], "hello");
        let mut sse = Sse::connect(&node.http("/v1/stream"), &node.admin_token, None)
            .await
            .unwrap();
        assert_eq!(sse.next().await.unwrap().event, "hello");
        let (status, answer) = node
            .publish(
                &node.admin_token,
                &json!([indicator(1), indicator(2), {"indicator": "not an indicator"}]),
            )
            .await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(ws_indicators(&mut ws, 2).await.len(), 2);
        assert_eq!(sse.indicators(2).await.len(), 2);
        let feed = reqwest::Client::new()
            .get(node.http("/v1/indicators"))
            .bearer_auth(&node.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(feed.status(), 200);
        BusyNode {
            node,
            _ws: ws,
            _sse: sse,
        }
    }
}

/// The sample names a scrape of this exposition yields: every sample's, and for a family with
/// no sample yet (labelled, nothing counted) the names its `# TYPE` implies.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            match kind {
                "counter" => names.insert(format!("{name}_total")),
                "histogram" | "summary" => {
                    names.extend(["_sum", "_count", "_bucket"].map(|s| format!("{name}{s}")));
                    names.insert(name.to_owned())
                }
                _ => names.insert(name.to_owned()),
            };
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// The same exposition in the Prometheus text format 0.0.4, the only one promtool 2.x's linter
/// reads. A node serves OpenMetrics, which names a counter's family without its `_total`
/// (`# TYPE sluice_delivered counter` over `sluice_delivered_total` samples); read as 0.0.4
/// that is a help-less `sluice_delivered_total`. Only the family names of counters change, and
/// `# EOF` goes.
fn to_text_format(openmetrics: &str) -> String {
    let counters: BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::new();
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

// ---- PromQL, as far as the tests need it -------------------------------------------------

/// Words of PromQL that are never metric names: aggregations, set and comparison keywords.
/// (Functions are recognised by the `(` after them.)
const PROMQL_WORDS: [&str; 19] = [
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const PROMQL_LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names an expression selects: identifiers that are not functions, aggregations,
/// keywords, label names (in `{…}` or after `by`, `on`, …), strings, durations or numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    // The index past the string whose opening quote is at `open`.
    let skip_string = |open: usize| -> usize {
        let quote = chars[open];
        let mut j = open + 1;
        while j < chars.len() && chars[j] != quote {
            j += if chars[j] == '\\' && quote != '`' {
                2
            } else {
                1
            };
        }
        assert!(j < chars.len(), "unterminated string in {expr}");
        j + 1
    };
    // The index past the bracket matching the one at `open`, strings inside skipped.
    let skip_group = |open: usize, closing: char| -> usize {
        let mut j = open + 1;
        while j < chars.len() && chars[j] != closing {
            j = if matches!(chars[j], '"' | '\'' | '`') {
                skip_string(j)
            } else {
                j + 1
            };
        }
        assert!(j < chars.len(), "unbalanced `{closing}` in {expr}");
        j + 1
    };
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(i);
        } else if c == '{' {
            i = skip_group(i, '}');
        } else if c == '[' {
            i = skip_group(i, ']');
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let before_paren = chars.get(next) == Some(&'(');
            if PROMQL_LABEL_LISTS.contains(&word.as_str()) {
                if before_paren {
                    i = skip_group(next, ')');
                }
            } else if !before_paren && !PROMQL_WORDS.contains(&word.to_lowercase().as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The `expr:` of every rule in a rules file (one line, or a `|`/`>` block under it).
fn rule_expressions(rules: &str) -> Vec<String> {
    let lines: Vec<&str> = rules.lines().collect();
    let mut exprs = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest.starts_with('|') || rest.starts_with('>') {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            exprs.push(block.join(" "));
        } else {
            exprs.push(rest.trim_matches(|c| c == '"' || c == '\'').to_owned());
        }
    }
    exprs
}

/// The names of the alerts a rules file defines.
fn alert_names(rules: &str) -> BTreeSet<String> {
    rules
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// A dashboard expression as Prometheus would get it from Grafana.
fn grafana_substituted(expr: &str) -> String {
    let expr = expr
        .replace("$__rate_interval", "1m")
        .replace("$instance", ".*");
    assert!(
        !expr.contains('$'),
        "a dashboard expression uses a variable the test does not know: {expr}"
    );
    expr
}

/// Every `expr` of the dashboard's panels, and the selectors of its `label_values` variables.
fn dashboard_expressions(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    out.push(expr.clone());
                }
                for (key, child) in map {
                    if key != "templating" {
                        walk(child, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(dashboard, &mut exprs);
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap();
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map(|(selector, _label)| selector.to_owned())
            .unwrap_or_else(|| {
                panic!("variable query not of the label_values(…, label) form: {query}")
            });
        exprs.push(selector);
    }
    exprs
}

#[test]
fn promql_metric_names_are_only_the_metrics() {
    let names = |expr: &str| metric_names(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(r#"sum by (job, instance) (increase(a_total{reason=~"x|y", q="}"}[2m])) > 0"#),
        ["a_total"]
    );
    assert_eq!(
        names("b > clamp_min(0.05 * sum by (i) (c{x=\"1\"}), 10) and on (i) d offset 5m"),
        ["b", "c", "d"]
    );
    assert_eq!(
        names("sum(rate(x:y_total[1m])) or vector(0)"),
        ["x:y_total"]
    );
    assert_eq!(names("up{job=\"sluice\"} == 1e3"), ["up"]);
}

// ---- promtool and Prometheus ---------------------------------------------------------------

/// promtool's linter on a real node's `/metrics`: nothing but the accepted findings.
#[tokio::test]
async fn node_metrics_pass_promtool_check_metrics() {
    let promtool = tool("promtool", "prometheus");
    let busy = BusyNode::start().await;
    let exposition = busy.node.metrics().await;
    for family in [
        "sluice_connections{",
        "sluice_delivered_total{",
        "sluice_ingest_accepted_total{",
        "sluice_ingest_rejected_total{",
        "sluice_token_lookups_total{",
        "sluice_correlator_accepted_total{",
    ] {
        assert!(
            exposition.contains(family),
            "no labelled {family}…}} series after traffic:\n{exposition}"
        );
    }
    let (ok, output) = run(
        StdCommand::new(&promtool).args(["check", "metrics"]),
        Some(&to_text_format(&exposition)),
    );
    let findings: BTreeSet<&str> = output
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let accepted: BTreeSet<&str> = ACCEPTED_LINT.into_iter().collect();
    assert_eq!(
        findings, accepted,
        "promtool check metrics (exit ok: {ok}) found other problems than the accepted ones"
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let promtool = tool("promtool", "prometheus");
    let rules = deploy_path("prometheus/alerts.yml");
    let (ok, output) = run(
        StdCommand::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(&rules),
        None,
    );
    assert!(ok, "promtool check rules:\n{output}");
    // Run from its directory, as documented; rule_files is relative to the test file anyway.
    let (ok, output) = run(
        StdCommand::new(&promtool)
            .args(["test", "rules", "alerts.test.yml"])
            .current_dir(deploy_path("prometheus")),
        None,
    );
    assert!(ok, "promtool test rules:\n{output}");
    // Every alert has a unit test that expects it to fire: an `alertname:` line followed by
    // `exp_alerts:` with an `exp_labels` entry (the quiet cases are one-line `{…}` items).
    let tests = read(&deploy_path("prometheus/alerts.test.yml"));
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let fired: BTreeSet<String> = lines
        .windows(3)
        .filter(|w| w[1] == "exp_alerts:" && w[2].starts_with("- exp_labels:"))
        .filter_map(|w| w[0].strip_prefix("alertname:"))
        .map(|name| name.trim().to_owned())
        .collect();
    assert_eq!(
        fired,
        alert_names(&read(&rules)),
        "every alert needs a case in alerts.test.yml that expects it to fire"
    );
}

#[tokio::test]
async fn alert_rules_name_only_metrics_a_node_exports() {
    let busy = BusyNode::start().await;
    let exported = exported_names(&busy.node.metrics().await);
    let rules = read(&deploy_path("prometheus/alerts.yml"));
    let exprs = rule_expressions(&rules);
    assert_eq!(exprs.len(), alert_names(&rules).len(), "one expr per alert");
    for expr in exprs {
        for name in metric_names(&expr) {
            assert!(
                exported.contains(&name) || EXTERNAL_METRICS.contains(&name.as_str()),
                "alerts.yml uses `{name}`, which a node does not export (expr: {expr}); it has: \
                 {exported:?}"
            );
        }
    }
}

#[test]
fn prometheus_config_passes_promtool_check_config() {
    let promtool = tool("promtool", "prometheus");
    let (ok, output) = run(
        StdCommand::new(&promtool)
            .args(["check", "config"])
            .arg(deploy_path("prometheus/prometheus.yml")),
        None,
    );
    assert!(ok, "promtool check config:\n{output}");
    assert!(output.contains("1 rule files found"), "{output}");
}

/// The dashboard's JSON, the shape Grafana provisioning needs, and every expression: valid
/// PromQL (promtool, as recording rules) naming only metrics a real node exports.
#[tokio::test]
async fn grafana_dashboard_names_only_metrics_a_node_exports() {
    let promtool = tool("promtool", "prometheus");
    let dashboard: Value = serde_json::from_str(&read(&deploy_path("grafana/sluice.json")))
        .expect("deploy/grafana/sluice.json is not JSON");
    assert_eq!(dashboard["uid"], "sluice");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "instance"]);
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        let title = &panel["title"];
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {title}");
        let targets = panel["targets"]
            .as_array()
            .expect("a panel without targets");
        let refs: BTreeSet<&str> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        assert_eq!(
            refs.len(),
            targets.len(),
            "duplicate refId in panel {title}"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "panel {title}");
    }

    let exprs = dashboard_expressions(&dashboard);
    assert!(exprs.len() > 20, "{exprs:?}");
    let busy = BusyNode::start().await;
    let exported = exported_names(&busy.node.metrics().await);
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for name in metric_names(&grafana_substituted(expr)) {
            assert!(
                exported.contains(&name) || EXTERNAL_METRICS.contains(&name.as_str()),
                "the dashboard uses `{name}`, which a node does not export (expr: {expr}); it \
                 has: {exported:?}"
            );
            used.insert(name);
        }
    }
    for needed in [
        "sluice_connections",
        "sluice_delivered_total",
        "sluice_stream_closes_total",
        "sluice_resets_total",
        "sluice_ingest_accepted_total",
        "sluice_ingest_lag_milliseconds",
        "sluice_correlator_emitted_total",
        "sluice_correlator_lag_milliseconds",
        "sluice_feed_throttled_total",
        "sluice_backend_errors_total",
    ] {
        assert!(used.contains(needed), "the dashboard shows no `{needed}`");
    }

    // Syntax: promtool parses every expression as a recording rule.
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, expr) in exprs.iter().enumerate() {
        let quoted = serde_json::to_string(&grafana_substituted(expr)).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:expr_{n}\n        expr: {quoted}\n"
        ));
    }
    let path = dir.path().join("dashboard.rules.yml");
    std::fs::write(&path, rules).unwrap();
    let (ok, output) = run(
        StdCommand::new(&promtool)
            .args(["check", "rules"])
            .arg(&path),
        None,
    );
    assert!(ok, "a dashboard expression is not valid PromQL:\n{output}");
}

/// A Prometheus HTTP API answer's `data`, asserting `status: success`.
async fn prometheus_api(base: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let url = url::Url::parse_with_params(&format!("{base}{path}"), params).unwrap();
    let answer: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(answer["status"], "success", "{path} {params:?}: {answer}");
    answer["data"].clone()
}

/// The shipped prometheus.yml (targets, intervals and the Alertmanager and blackbox addresses
/// replaced by the test's) run by a real Prometheus: it scrapes a real node's OpenMetrics, loads
/// and evaluates alerts.yml with nothing firing for a healthy node, and answers every dashboard
/// expression.
#[tokio::test]
async fn prometheus_scrapes_a_node_and_evaluates_the_rules_and_dashboard() {
    let prometheus = tool("prometheus", "prometheus");
    let busy = BusyNode::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = read(&deploy_path("prometheus/prometheus.yml"));
    let config = replace_once(&config, "scrape_interval: 15s", "scrape_interval: 1s");
    let config = replace_once(
        &config,
        "evaluation_interval: 15s",
        "evaluation_interval: 1s",
    );
    let config = replace_once(
        &config,
        r#"targets: ["127.0.0.1:8081", "127.0.0.1:8082"]"#,
        &format!(r#"targets: ["{}"]"#, busy.node.addr),
    );
    // Nothing listens on these (the probes' own targets are only parameters to the exporter).
    let config = replace_once(
        &config,
        r#"targets: ["127.0.0.1:9093"]"#,
        &format!(r#"targets: ["127.0.0.1:{}"]"#, free_port()),
    );
    let config = replace_once(
        &config,
        "replacement: 127.0.0.1:9115",
        &format!("replacement: 127.0.0.1:{}", free_port()),
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    std::fs::copy(
        deploy_path("prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    let port = free_port();
    let log = dir.path().join("prometheus.log");
    let mut child = Command::new(&prometheus)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let alerts = alert_names(&read(&deploy_path("prometheus/alerts.yml")));

    // Scraped (`up` is 1 only if the OpenMetrics parsed) and every rule evaluated without error.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("prometheus exited ({status}):\n{}", read(&log));
        }
        let ready = reqwest::get(format!("{base}/-/ready"))
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            let up =
                prometheus_api(&base, "/api/v1/query", &[("query", r#"up{job="sluice"}"#)]).await;
            let scraped = up["result"][0]["value"][1] == "1";
            let groups = prometheus_api(&base, "/api/v1/rules", &[]).await;
            let rules: Vec<&Value> = groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap())
                .collect();
            let evaluated =
                rules.len() == alerts.len() && rules.iter().all(|rule| rule["health"] == "ok");
            if scraped && evaluated {
                let loaded: BTreeSet<String> = rules
                    .iter()
                    .map(|rule| rule["name"].as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(loaded, alerts);
                for rule in rules {
                    assert_eq!(rule["state"], "inactive", "a healthy node alerts: {rule}");
                }
                break;
            }
            for rule in &rules {
                assert!(
                    rule["lastError"].as_str().unwrap_or("").is_empty(),
                    "rule evaluation failed: {rule}"
                );
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "prometheus did not scrape the node and evaluate the rules:\n{}",
            read(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let dashboard: Value =
        serde_json::from_str(&read(&deploy_path("grafana/sluice.json"))).unwrap();
    for expr in dashboard_expressions(&dashboard) {
        let expr = grafana_substituted(&expr);
        prometheus_api(&base, "/api/v1/query", &[("query", &expr)]).await;
    }
    // The two open streams, as the dashboard's "Open streams" panel sums them.
    let open = prometheus_api(
        &base,
        "/api/v1/query",
        &[("query", r#"sum(sluice_connections{instance=~".*"})"#)],
    )
    .await;
    assert_eq!(open["result"][0]["value"][1], "2", "{open}");
}

// ---- nginx ---------------------------------------------------------------------------------

/// A private nginx running the shipped `nginx.conf` and `sluice.conf`, rendered with the test's
/// listen port, upstream addresses and paths (pid, logs, temp files in its own directory).
/// `tweaks` are further replacements in the site (each must match exactly once).
struct Nginx {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(gateways: [SocketAddr; 2], web: SocketAddr, tweaks: &[(&str, &str)]) -> Nginx {
        let nginx = tool("nginx", "nginx");
        let dir = tempfile::tempdir().unwrap();
        let root = is_root();
        if root {
            // The workers run as `nobody`: they must reach the temp directories in here.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let port = free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();

        let mut site = read(&deploy_path("nginx/sluice.conf"));
        site = replace_once(&site, "listen 80;", &format!("listen 127.0.0.1:{port};"));
        site = replace_once(
            &site,
            "server gateway-1:8080 ",
            &format!("server {} ", gateways[0]),
        );
        site = replace_once(
            &site,
            "server gateway-2:8080 ",
            &format!("server {} ", gateways[1]),
        );
        site = replace_once(&site, "server web:8080;", &format!("server {web};"));
        for (from, to) in tweaks {
            site = replace_once(&site, from, to);
        }
        std::fs::write(path("sluice.conf"), site).unwrap();

        let mut main = read(&deploy_path("nginx/nginx.conf"));
        if root {
            // Root's nginx switches its workers to `user`; the official image's `nginx` user
            // does not exist on Debian. Unprivileged, nginx ignores the directive.
            let (ok, group) = run(StdCommand::new("id").args(["-gn", "nobody"]), None);
            assert!(ok, "{group}");
            main = replace_once(
                &main,
                "user nginx;",
                &format!("user nobody {};", group.trim()),
            );
        }
        main = replace_once(
            &main,
            "error_log /var/log/nginx/error.log notice;",
            &format!("error_log {} notice;", path("error.log")),
        );
        main = replace_once(
            &main,
            "pid /var/run/nginx.pid;",
            &format!("pid {};", path("nginx.pid")),
        );
        main = replace_once(
            &main,
            "access_log /var/log/nginx/access.log sluice;",
            &format!("access_log {} sluice;", path("access.log")),
        );
        let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|kind| format!("{kind}_temp_path {};\n    ", path(&format!("{kind}_temp"))))
            .collect();
        main = replace_once(
            &main,
            "include /etc/nginx/conf.d/*.conf;",
            &format!("{temp_paths}include {};", path("sluice.conf")),
        );
        std::fs::write(path("nginx.conf"), main).unwrap();

        let config = path("nginx.conf");
        let prefix = format!("{}/", dir.path().display());
        let (ok, output) = run(
            StdCommand::new(&nginx).args(["-t", "-p", &prefix, "-c", &config]),
            None,
        );
        assert!(ok, "nginx -t refuses the rendered config:\n{output}");
        let child = StdCommand::new(&nginx)
            .args(["-p", &prefix, "-c", &config, "-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path("stderr.log")).unwrap())
            .spawn()
            .expect("cannot start nginx");
        Nginx { child, port, dir }
    }

    /// Waits until nginx answers `/healthz` through to a gateway.
    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited ({status}):\n{}", self.error_log());
            }
            if let Ok(response) = reqwest::get(self.http("/healthz")).await {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not proxy /healthz:\n{}",
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn ws(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    fn error_log(&self) -> String {
        let read = |name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("error.log"), read("stderr.log"))
    }

    /// The access log's lines for requests sent with `user_agent`, once there are `n` (a
    /// stream's line is written when it ends).
    async fn log_lines(&self, user_agent: &str, n: usize) -> Vec<String> {
        self.log_lines_with(&format!("\"{user_agent}\""), n).await
    }

    /// The access log's lines that contain `needle`, once there are `n`.
    async fn log_lines_with(&self, needle: &str, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let lines: Vec<String> = self
                .access_log()
                .lines()
                .filter(|line| line.contains(needle))
                .map(str::to_owned)
                .collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "fewer than {n} access log lines with {needle}:\n{}",
                self.access_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Nginx {
    /// SIGTERM (fast shutdown): the master takes its workers down. A SIGKILL would leave them.
    fn drop(&mut self) {
        let _ = StdCommand::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two gateway nodes on one Redis (an `up` and a `gateway`) and `sluice web`, all on one SQLite
/// account database, behind the shipped nginx site.
struct Site {
    nginx: Nginx,
    gateways: [Node; 2],
    web: Node,
    _redis: RedisServer,
    _data: tempfile::TempDir,
}

impl Site {
    async fn start(gateway_args: &[&str], tweaks: &[(&str, &str)]) -> Site {
        let redis = RedisServer::start().expect("cannot start redis-server");
        let data = tempfile::tempdir().unwrap();
        let args: Vec<String> = gateway_args.iter().map(|a| a.to_string()).collect();
        let first = Node::start(NodeOptions {
            redis: Some(redis.url()),
            data_dir: Some(data.path().to_path_buf()),
            args: std::iter::once("--no-correlator".to_owned())
                .chain(args.iter().cloned())
                .collect(),
            ..NodeOptions::default()
        })
        .await;
        let second = Node::start(NodeOptions {
            role: Some("gateway"),
            redis: Some(redis.url()),
            data_dir: Some(data.path().to_path_buf()),
            admin_token: Some(first.admin_token.clone()),
            args,
            ..NodeOptions::default()
        })
        .await;
        let web = Node::start(NodeOptions {
            role: Some("web"),
            data_dir: Some(data.path().to_path_buf()),
            admin_token: Some(first.admin_token.clone()),
            ..NodeOptions::default()
        })
        .await;
        let mut nginx = Nginx::start([first.addr, second.addr], web.addr, tweaks);
        nginx.wait_ready().await;
        wait_upstream_subscribers(&redis.url(), 2).await;
        Site {
            nginx,
            gateways: [first, second],
            web,
            _redis: redis,
            _data: data,
        }
    }

    fn token(&self) -> &str {
        &self.gateways[0].admin_token
    }

    fn gateway_addrs(&self) -> [String; 2] {
        self.gateways.each_ref().map(|node| node.addr.to_string())
    }

    /// Publishes through nginx; returns the indicators' cursors.
    async fn publish(&self, indicators: &[Value]) -> Vec<String> {
        let response = reqwest::Client::new()
            .post(self.nginx.http("/v1/indicators"))
            .bearer_auth(self.token())
            .json(&Value::from(indicators.to_vec()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let answer: Value = response.json().await.unwrap();
        answer["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect()
    }
}

type Body = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Reads an SSE body into `text` until it contains `needle`.
async fn read_until(body: &mut Body, text: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !text.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("no `{needle}` on the SSE stream: {text}"))
            .expect("the SSE stream ended")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

/// `location <pattern> { … }`'s body in the site, for checking its directives.
fn location_block<'a>(site: &'a str, header: &str) -> &'a str {
    let start = site
        .find(header)
        .unwrap_or_else(|| panic!("no `{header}` in sluice.conf"));
    let body = &site[start + header.len()..];
    &body[..body.find("\n    }").expect("unterminated location")]
}

/// The directives of a block, `name` → values (comments dropped).
fn directives(block: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in block.lines() {
        let line = line.split('#').next().unwrap().trim();
        if let Some(statement) = line.strip_suffix(';') {
            let (name, value) = statement
                .split_once(char::is_whitespace)
                .unwrap_or((statement, ""));
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.to_owned()).or_default().push(value);
        }
    }
    out
}

/// A default of `sluice up --help` (`[default: 20s]` under the flag).
async fn cli_default(flag: &str) -> Duration {
    let output = Command::new(sluice_binary())
        .args(["up", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    let after = &help[help
        .find(&format!("--{flag} "))
        .unwrap_or_else(|| panic!("no --{flag} in `sluice up --help`"))..];
    let default = after
        .split("[default: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("no default for --{flag}"));
    humantime::parse_duration(default).unwrap()
}

/// An nginx duration (`120s`, `2m`, `500ms`).
fn nginx_duration(value: &str) -> Duration {
    humantime::parse_duration(value).unwrap_or_else(|_| panic!("not a duration: {value}"))
}

/// The settings a stream needs, read from the shipped site: no buffering or caching, the
/// upgrade headers, and idle timeouts well above what the gateway's keep-alives need.
#[tokio::test]
async fn nginx_site_states_what_streams_need() {
    let site = read(&deploy_path("nginx/sluice.conf"));
    let server = directives(&site[site.find("server {").unwrap()..]);
    assert_eq!(server["gzip"], ["off"], "gzip buffers event streams");
    let streams = directives(location_block(
        &site,
        "location ~ ^/(v1/stream|firehose|cif/firehose)$ {",
    ));
    for (name, value) in [
        ("proxy_buffering", "off"),
        ("proxy_cache", "off"),
        ("proxy_http_version", "1.1"),
    ] {
        assert_eq!(streams[name], [value], "{name} on the stream location");
    }
    let headers = &streams["proxy_set_header"];
    for header in ["Upgrade $http_upgrade", "Connection $connection_upgrade"] {
        assert!(
            headers.iter().any(|h| h == header),
            "no proxy_set_header {header}"
        );
    }
    let ping = cli_default("ws-ping-interval").await;
    let heartbeat = cli_default("sse-heartbeat").await;
    assert_eq!(
        (ping, heartbeat),
        (Duration::from_secs(20), Duration::from_secs(15))
    );
    for timeout in ["proxy_read_timeout", "proxy_send_timeout"] {
        let value = nginx_duration(&streams[timeout][0]);
        assert!(
            value >= 2 * ping.max(heartbeat),
            "{timeout} {value:?} must outlive two keep-alives (ping {ping:?}, SSE heartbeat \
             {heartbeat:?})"
        );
    }
    let ingest = directives(location_block(&site, "location = /v1/indicators {"));
    assert_eq!(ingest["client_max_body_size"], ["1m"]);
}

/// Through the shipped nginx: streams over WebSocket and SSE get an indicator published after
/// they connected at once, every path reaches the right role, a query-string token stays out of
/// the logs, and the ingest body limit is 1 MiB.
#[tokio::test]
async fn nginx_streams_routes_and_limits_in_front_of_real_nodes() {
    let site = Site::start(&[], &[]).await;
    let nginx = &site.nginx;
    let client = reqwest::Client::new();
    let gateways = site.gateway_addrs();
    let web = site.web.addr.to_string();

    // Routing: each request tagged by its User-Agent, its upstream read from the access log.
    let get = |path: &str, tag: String| {
        client
            .get(nginx.http(path))
            .bearer_auth(site.token())
            .header("user-agent", tag)
            .header("accept-encoding", "gzip")
            .send()
    };
    for (path, status, role) in [
        ("/", 200, "web"),
        ("/signin", 200, "web"),
        ("/v1/plans", 200, "web"),
        ("/openapi.json", 200, "web"),
        ("/v1/indicators", 200, "gateway"),
        ("/indicators", 200, "gateway"),
        ("/ping", 200, "gateway"),
        ("/healthz", 200, "gateway"),
        ("/readyz", 200, "gateway"),
        ("/metrics", 404, "nginx"),
        ("/operator", 200, "web"),
        ("/v1/account/webhooks", 200, "web"),
        ("/v1/admin/connections", 200, "gateway"),
        ("/v1/admin/connections?scope=node", 200, "gateway"),
        // Withdrawals are DELETE only: the gateway's 405 says the request got there.
        (
            "/v1/indicators/indicator--0d0b4a4e-5d7b-5b8e-9c63-000000000000",
            405,
            "gateway",
        ),
    ] {
        let tag = format!("deploy-route{path}");
        let response = get(path, tag.clone()).await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert!(
            response.headers().get("content-encoding").is_none(),
            "{path}"
        );
        if path == "/indicators" {
            // CIF clients cannot read chunked responses.
            assert!(response.headers().contains_key("content-length"));
        }
        let line = nginx.log_lines(&tag, 1).await.remove(0);
        let upstream = line
            .split("upstream=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap();
        match role {
            "web" => assert_eq!(upstream, web, "{path}: {line}"),
            "gateway" => assert!(gateways.contains(&upstream.to_owned()), "{path}: {line}"),
            _ => assert_eq!(upstream, "-", "{path} reached a node: {line}"),
        }
    }

    // A WebSocket and an SSE stream, both through nginx, get what is published after they
    // connected, at once. The SSE client offers gzip: the answer must not be compressed.
    let mut ws = ws_connect(&nginx.ws("/v1/stream"), Some(site.token()))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut ws).await["type"], "hello");
    let response = client
        .get(nginx.http("/v1/stream"))
        .bearer_auth(site.token())
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().get("content-encoding").is_none());
    let mut sse: Body = Box::pin(response.bytes_stream());
    let mut sse_text = String::new();
    read_until(&mut sse, &mut sse_text, "event: hello").await;
    let published = tokio::time::Instant::now();
    let ids = site.publish(&[indicator(7)]).await;
    let needle = format!("id: {}", ids[0]);
    let (frame, ()) = tokio::join!(
        ws_frame(&mut ws),
        read_until(&mut sse, &mut sse_text, &needle)
    );
    assert_eq!(frame["id"], ids[0]);
    assert_eq!(frame["data"]["indicator"], ip(7));
    assert!(
        published.elapsed() < PROMPT,
        "the streams got the indicator only after {:?}",
        published.elapsed()
    );
    drop(ws);
    nginx
        .log_lines_with("\"GET /v1/stream HTTP/1.1\" 101 ", 1)
        .await;

    // A token in the query string (EventSource, browsers) is not in nginx's logs.
    let token = site.token().to_owned();
    let query_stream = client
        .get(nginx.http(&format!("/v1/stream?access_token={token}")))
        .header("user-agent", "deploy-query-token")
        .send()
        .await
        .unwrap();
    assert_eq!(query_stream.status(), 200);
    let mut body = query_stream.bytes_stream();
    tokio::time::timeout(WAIT, body.next())
        .await
        .expect("no greeting on the query-token stream")
        .unwrap()
        .unwrap();
    drop(body);
    let feed = client
        .get(nginx.http(&format!("/indicators?access_token={token}&limit=1")))
        .header("user-agent", "deploy-query-token")
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    // TAXII clients send the token in HTTP Basic, as the password or as the user name; the
    // pull endpoints reach a gateway.
    for (path, status) in [
        ("/taxii2/", 200),
        ("/v1/lists/firewall.txt", 200),
        ("/feed", 200),
    ] {
        let response = client
            .get(nginx.http(path))
            .basic_auth(&token, None::<&str>)
            .header("accept", "application/taxii+json;version=2.1, */*")
            .header("user-agent", "deploy-query-token")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
    }
    // Every request is logged (a stream once it ends), by path only.
    let lines = nginx.log_lines("deploy-query-token", 5).await;
    for (name, log) in [("access", nginx.access_log()), ("error", nginx.error_log())] {
        assert!(
            !log.contains(&token),
            "the token is in nginx's {name} log:\n{log}"
        );
        assert!(
            !log.contains("access_token"),
            "a query string is in nginx's {name} log:\n{log}"
        );
    }
    for path in [
        "/v1/stream",
        "/indicators",
        "/taxii2/",
        "/v1/lists/firewall.txt",
        "/feed",
    ] {
        let request = format!("\"GET {path} HTTP/1.1\" 200 ");
        let line = lines.iter().find(|l| l.contains(&request));
        assert!(line.is_some(), "{path}: {lines:?}");
    }

    // Ingest: exactly 1 MiB passes nginx and the gateway; one byte more is refused by nginx
    // itself (its HTML 413, no upstream), and the gateway refuses the same on its own.
    let body_of = |len: usize| {
        let mut body = json!({"indicator": ip(9), "tags": ["scanner"]}).to_string();
        body.push_str(&" ".repeat(len - body.len()));
        body
    };
    let post = |url: String, body: String, tag: &'static str| {
        client
            .post(url)
            .bearer_auth(site.token())
            .header("content-type", "application/json")
            .header("user-agent", tag)
            .body(body)
            .send()
    };
    const MIB: usize = 1024 * 1024;
    let response = post(nginx.http("/v1/indicators"), body_of(MIB), "deploy-1mib")
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.json::<Value>().await.unwrap()["accepted"], 1);
    let response = post(
        nginx.http("/v1/indicators"),
        body_of(MIB + 1),
        "deploy-over",
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 413);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<center>nginx</center>"),
        "not nginx's 413: {page}"
    );
    let line = nginx.log_lines("deploy-over", 1).await.remove(0);
    assert!(
        line.contains(" 413 ") && line.contains("upstream=-"),
        "{line}"
    );
    let response = post(
        site.gateways[1].http("/v1/indicators"),
        body_of(MIB + 1),
        "deploy-over-direct",
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
}

/// With nginx's stream idle timeouts cut to 3 s and the gateways' WebSocket ping and SSE
/// heartbeat at 1 s, streams through nginx outlive several timeouts: the keep-alives pass
/// through and count as traffic, as they must for the shipped 120 s against 20 s and 15 s.
#[tokio::test]
async fn nginx_keeps_streams_alive_across_its_idle_timeout() {
    let site = Site::start(
        &["--ws-ping-interval", "1s", "--sse-heartbeat", "1s"],
        &[
            ("proxy_read_timeout 120s;", "proxy_read_timeout 3s;"),
            ("proxy_send_timeout 120s;", "proxy_send_timeout 3s;"),
        ],
    )
    .await;
    let nginx = &site.nginx;
    let mut ws = ws_connect(&nginx.ws("/v1/stream"), Some(site.token()))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut ws).await["type"], "hello");
    let mut sse = Sse::connect(&nginx.http("/v1/stream"), site.token(), None)
        .await
        .unwrap();
    assert_eq!(sse.next().await.unwrap().event, "hello");

    let quiet = Duration::from_secs(8);
    let until = tokio::time::Instant::now() + quiet;
    let ws_pings = async {
        let mut pings = 0;
        loop {
            match tokio::time::timeout_at(until, ws.next()).await {
                Err(_) => return pings,
                Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
                Ok(other) => panic!("the WebSocket through nginx ended or spoke: {other:?}"),
            }
        }
    };
    // The harness's SSE reader skips comments; a raw body shows the heartbeats.
    let raw = reqwest::Client::new()
        .get(nginx.http("/v1/stream"))
        .bearer_auth(site.token())
        .send()
        .await
        .unwrap();
    let mut raw: Body = Box::pin(raw.bytes_stream());
    let sse_heartbeats = async {
        let mut text = String::new();
        loop {
            match tokio::time::timeout_at(until, raw.next()).await {
                Err(_) => return text.matches(": heartbeat").count(),
                Ok(Some(Ok(chunk))) => text.push_str(std::str::from_utf8(&chunk).unwrap()),
                Ok(other) => panic!("the SSE stream through nginx ended: {other:?} after {text}"),
            }
        }
    };
    let (pings, heartbeats) = tokio::join!(ws_pings, sse_heartbeats);
    assert!(pings >= 5, "{pings} pings in {quiet:?} through nginx");
    assert!(
        heartbeats >= 5,
        "{heartbeats} heartbeats in {quiet:?} through nginx"
    );

    // They still deliver.
    let ids = site.publish(&[indicator(3)]).await;
    assert_eq!(ws_indicators(&mut ws, 1).await[0].0, ids[0]);
    assert_eq!(sse.indicators(1).await[0].0, ids[0]);
    let mut text = String::new();
    read_until(&mut raw, &mut text, &format!("id: {}", ids[0])).await;
}

// ---- systemd -------------------------------------------------------------------------------

/// The `[Service]` settings of a unit file: key → every value given.
fn service_settings(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_service = false;
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.starts_with('#') {
            if let Some((key, value)) = line.split_once('=') {
                out.entry(key.to_owned())
                    .or_default()
                    .push(value.to_owned());
            }
        }
    }
    out
}

/// Every unit passes `systemd-analyze verify` (with ExecStart pointed at the test's binary, as
/// /usr/local/bin/sluice is not installed here) without a warning, rates at most 2.0 ("OK") in
/// `systemd-analyze security --offline`, runs as the sysusers file's `sluice` user and carries
/// the hardening and limits this deployment relies on.
#[test]
fn systemd_units_verify_and_are_hardened() {
    let analyze = tool("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let mut units: Vec<(String, String)> = std::fs::read_dir(deploy_path("systemd"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".service"))
        .map(|name| {
            let text = read(&deploy_path(&format!("systemd/{name}")));
            (name, text)
        })
        .collect();
    units.sort();
    assert_eq!(units.len(), 5, "{units:?}");
    let mut to_verify = Vec::new();
    for (name, text) in &units {
        let rendered = replace_once(
            text,
            "ExecStart=/usr/local/bin/sluice ",
            &format!("ExecStart={} ", sluice_binary()),
        );
        std::fs::write(dir.path().join(name), rendered).unwrap();
        // A template is verified as an instance (the port, as documented).
        to_verify.push(dir.path().join(name.replace("@.", "@8081.")));
    }
    let (ok, output) = run(
        StdCommand::new(&analyze).arg("verify").args(&to_verify),
        None,
    );
    assert!(
        ok && output.trim().is_empty(),
        "systemd-analyze verify:\n{output}"
    );
    // verify only warns about a bad value, so the empty output above is what counts; a broken
    // copy shows that it would speak.
    let broken = dir.path().join("broken.service");
    std::fs::write(
        &broken,
        read(&dir.path().join("sluice.service")).replace("ProtectHome=yes", "ProtectHome=bogus"),
    )
    .unwrap();
    let (_, output) = run(StdCommand::new(&analyze).arg("verify").arg(&broken), None);
    assert!(
        output.contains("bogus"),
        "verify did not flag a bad value: {output}"
    );

    for unit in &to_verify {
        let (ok, output) = run(
            StdCommand::new(&analyze)
                .args(["security", "--offline=true", "--threshold=20"])
                .arg(unit),
            None,
        );
        let overall = output
            .lines()
            .find(|line| line.contains("Overall exposure level"))
            .unwrap_or_default();
        assert!(
            ok,
            "systemd-analyze security rates {} above 2.0: {overall}",
            unit.display()
        );
    }

    // The user: what the sysusers file creates is what every unit runs as.
    let sysusers = tool("systemd-sysusers", "systemd");
    let root = tempfile::tempdir().unwrap();
    let (ok, output) = run(
        StdCommand::new(&sysusers)
            .arg("--dry-run")
            .arg(format!("--root={}", root.path().display()))
            .arg(deploy_path("systemd/sluice.sysusers.conf")),
        None,
    );
    assert!(ok && output.contains("Creating user 'sluice'"), "{output}");

    let grace = Duration::from_secs(10);
    for (name, text) in &units {
        let service = service_settings(text);
        let one = |key: &str| -> &str {
            let values = service
                .get(key)
                .unwrap_or_else(|| panic!("{name}: no {key}="));
            assert_eq!(values.len(), 1, "{name}: {key}= given {values:?}");
            &values[0]
        };
        for (key, value) in [
            ("User", "sluice"),
            ("Group", "sluice"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("CapabilityBoundingSet", ""),
        ] {
            assert_eq!(one(key), value, "{name}: {key}=");
        }
        assert!(
            one("ExecStart").starts_with("/usr/local/bin/sluice "),
            "{name}"
        );
        // The data directory is the one place it may write: its StateDirectory (which
        // ProtectSystem=strict leaves writable), or listed in ReadWritePaths.
        let data_dir = service["Environment"]
            .iter()
            .find_map(|env| env.strip_prefix("SLUICE_DATA_DIR="))
            .unwrap_or_else(|| panic!("{name}: no SLUICE_DATA_DIR"));
        let state_dir = service
            .get("StateDirectory")
            .map(|dirs| format!("/var/lib/{}", dirs[0]));
        let writable = service.get("ReadWritePaths").is_some_and(|paths| {
            paths
                .iter()
                .any(|p| p.split_whitespace().any(|p| p == data_dir))
        });
        assert!(
            state_dir.as_deref() == Some(data_dir) || writable,
            "{name}: SLUICE_DATA_DIR={data_dir} is not writable under ProtectSystem=strict"
        );
        assert_eq!(one("WorkingDirectory"), data_dir, "{name}");
        if one("Type") == "oneshot" {
            continue;
        }
        // A long-running role: enough descriptors for 50,000 sockets, restarts, and a stop
        // timeout above the drain grace.
        let nofile: u64 = one("LimitNOFILE").parse().unwrap();
        assert!(nofile >= 65536, "{name}: LimitNOFILE={nofile}");
        assert_eq!(one("Restart"), "on-failure", "{name}");
        assert_eq!(one("KillSignal"), "SIGTERM", "{name}");
        let stop = humantime::parse_duration(one("TimeoutStopSec")).unwrap();
        assert!(
            stop > grace,
            "{name}: TimeoutStopSec={stop:?} under the {grace:?} grace"
        );
    }
}
