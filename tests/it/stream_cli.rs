//! `sluice stream`, the command-line consumer, against a real server: output, reconnect and
//! resume across a server restart and its own restart, refusals, whole-file outputs, `--since`,
//! and the Suricata dataset and STIX formats.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::harness::*;
use testkit::RedisServer;

fn ips(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(ip).collect()
}

#[tokio::test]
async fn resumes_across_a_server_restart_and_its_own_without_gap_or_duplicate() {
    let redis = RedisServer::start().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let options = NodeOptions {
        redis: Some(redis.url()),
        data_dir: Some(data_dir.path().to_path_buf()),
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    };
    let mut node = Node::start(options.clone()).await;
    let cursor_file = data_dir.path().join("stream.cursor");
    let cursor_arg = cursor_file.to_str().unwrap();
    let mut consumer = Consumer::start(&node, &["--cursor-file", cursor_arg]);
    // It has connected once its cursor file holds the `hello` position.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cursor_file.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sluice stream did not connect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    node.publish_all(&(0..5).map(indicator).collect::<Vec<_>>())
        .await;
    assert_eq!(consumer.indicators(5).await, ips(0..5));

    // The server restarts (1001 to its clients) on the same port; meanwhile nobody listens.
    node.signal("TERM");
    node.wait_exit().await;
    let node = Node::start(NodeOptions {
        port: Some(node.addr.port()),
        admin_token: Some(node.admin_token.clone()),
        ..options.clone()
    })
    .await;
    node.publish_all(&(5..10).map(indicator).collect::<Vec<_>>())
        .await;
    assert_eq!(consumer.indicators(5).await, ips(5..10));

    // The consumer itself stops; what is published meanwhile waits in the log for it.
    consumer.interrupt().await;
    node.publish_all(&(10..13).map(indicator).collect::<Vec<_>>())
        .await;
    let mut consumer = Consumer::start(&node, &["--cursor-file", cursor_arg]);
    assert_eq!(consumer.indicators(3).await, ips(10..13));
    node.publish_all(&[indicator(13)]).await;
    assert_eq!(
        consumer.indicators(1).await,
        ips(13..14),
        "nothing repeated"
    );
}

#[tokio::test]
async fn a_refused_token_ends_it_with_a_clear_message() {
    let node = Node::start(NodeOptions::default()).await;
    let output = Command::new(sluice_binary())
        .args([
            "stream",
            "--url",
            &node.http(""),
            "--token",
            "slc_not_a_real_token",
        ])
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refused the token (HTTP 401)"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn zeek_output_is_a_whole_file_rewritten_atomically() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let intel = dir.path().join("sluice.intel");
    let cursor_file = state.path().join("zeek.cursor");
    let args = [
        "--format",
        "zeek",
        "--output",
        intel.to_str().unwrap(),
        "--output-interval",
        "100ms",
        "--cursor",
        "earliest",
        "--cursor-file",
        cursor_file.to_str().unwrap(),
    ];
    let consumer = Consumer::start(&node, &args);
    node.publish_all(&[
        indicator(1),
        serde_json::json!({"indicator": "evil.example.com", "tags": "c2"}),
        serde_json::json!({"indicator": "AS13335", "tags": "hosting"}),
    ])
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&intel).unwrap_or_default();
        if text.contains("evil.example.com") {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no zeek file: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc"
    );
    assert!(
        lines.contains(&format!("{}\tIntel::ADDR\tadmin\tscanner", ip(1)).as_str()),
        "{text}"
    );
    assert!(
        lines.contains(&"evil.example.com\tIntel::DOMAIN\tadmin\tc2"),
        "{text}"
    );
    assert_eq!(lines.len(), 3, "ASNs have no Zeek intel type: {text}");
    // Only the finished file is ever visible: no temporary file is left behind.
    consumer.interrupt().await;
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["sluice.intel"]);
    let cursor = std::fs::read_to_string(&cursor_file).unwrap();
    assert!(
        cursor.trim().contains('.'),
        "a real position, not `earliest`: {cursor:?}"
    );

    // A restart resumes from the cursor and keeps what the file already had.
    let _consumer = Consumer::start(&node, &args);
    node.publish_all(&[serde_json::json!({"indicator": "later.example.com", "tags": "c2"})])
        .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let text = std::fs::read_to_string(&intel).unwrap_or_default();
        if text.contains("later.example.com") {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new line: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.contains("evil.example.com\tIntel::DOMAIN"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
}

/// An output or cursor file that cannot be written is refused before anything connects: exit
/// 64 and one line naming the flag, and the server never sees a connection.
#[tokio::test]
async fn an_unwritable_output_is_refused_before_connecting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing/dir/f");
    let missing = missing.to_str().unwrap();
    let directory = dir.path().to_str().unwrap();
    for (args, flag) in [
        (&["--format", "zeek", "--output", missing][..], "--output"),
        (&["--format", "bindrpz", "--output", directory], "--output"),
        (&["--format", "csv", "--output", missing], "--output"),
        (&["--cursor-file", missing], "--cursor-file"),
    ] {
        let output = Command::new(sluice_binary())
            .arg("stream")
            .args(args)
            .args(["--url", &url, "--token", "slc_not_needed_here"])
            .env_remove("SLUICE_TOKEN")
            .stdin(Stdio::null())
            .output();
        let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(
            matches!(listener.accept(), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
            "{args:?} connected before refusing its output"
        );
    }
    assert!(!dir.path().join("missing").exists());
}

/// Waits until `path` holds a cursor (the stream said `hello`).
async fn wait_for_cursor(path: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::fs::read_to_string(path).map_or(true, |text| !text.contains('.')) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sluice stream did not connect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `--since` with a time starts at what was added after it; with a duration, that long ago; a
/// restart with the same flags resumes from the cursor file instead of going back to the time.
#[tokio::test]
async fn since_starts_at_a_time_and_a_restart_resumes_from_the_cursor_file() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    node.publish_all(&(0..3).map(indicator).collect::<Vec<_>>())
        .await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(Duration::from_millis(30)).await;
    node.publish_all(&(3..6).map(indicator).collect::<Vec<_>>())
        .await;

    let state = tempfile::tempdir().unwrap();
    let cursor_file = state.path().join("since.cursor");
    let args = [
        "--since",
        time.as_str(),
        "--cursor-file",
        cursor_file.to_str().unwrap(),
    ];
    let mut consumer = Consumer::start(&node, &args);
    assert_eq!(consumer.indicators(3).await, ips(3..6));
    node.publish_all(&[indicator(6)]).await;
    assert_eq!(consumer.indicators(1).await, ips(6..7));
    consumer.interrupt().await;

    node.publish_all(&[indicator(7)]).await;
    let mut consumer = Consumer::start(&node, &args);
    assert_eq!(
        consumer.indicators(1).await,
        ips(7..8),
        "resumed from the cursor file, not from --since"
    );
    consumer.interrupt().await;

    // A duration reaches back from now: an hour holds everything.
    let mut consumer = Consumer::start(&node, &["--since", "1h"]);
    assert_eq!(consumer.indicators(8).await, ips(0..8));
}

/// `--since` with `--cursor`, or a value that is neither a duration nor a time, exits 64 with
/// one line naming the flag, before anything connects.
#[tokio::test]
async fn a_bad_since_exits_64_before_connecting() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    for (args, says) in [
        (&["--since", "2h", "--cursor", "earliest"][..], "--cursor"),
        (&["--since", "yesterday"], "neither a duration"),
        (&["--since", "2026-11-23"], "neither a duration"),
        (&["--since", "1700000000"], "neither a duration"),
        (&["--since", "100years"], "before 1970"),
        (&["--since", "1969-12-31T23:59:59Z"], "before 1970"),
    ] {
        let output = Command::new(sluice_binary())
            .arg("stream")
            .args(args)
            .args(["--url", &url, "--token", "slc_not_needed_here"])
            .env_remove("SLUICE_TOKEN")
            .env_remove("SLUICE_CURSOR")
            .env_remove("SLUICE_SINCE")
            .stdin(Stdio::null())
            .output();
        let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("--since") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
        assert!(
            matches!(listener.accept(), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
            "{args:?} connected before refusing"
        );
    }
}

/// `--format stix` prints one STIX bundle per line; `--format suricata-dataset` keeps a whole
/// dataset file, one value per line (addresses as written, names base64), without the itypes
/// Suricata has no dataset type for.
#[tokio::test]
async fn stix_and_suricata_dataset_formats() {
    let node = Node::start(NodeOptions {
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("sluice.lst");
    let cursor_file = dir.path().join("dataset.cursor");
    let mut stix = Consumer::start(&node, &["--format", "stix", "--cursor", "earliest"]);
    let _suricata = Consumer::start(
        &node,
        &[
            "--format",
            "suricata-dataset",
            "--output",
            dataset.to_str().unwrap(),
            "--output-interval",
            "100ms",
            "--cursor-file",
            cursor_file.to_str().unwrap(),
        ],
    );
    wait_for_cursor(&cursor_file).await;
    let ids = node.publish_all(&[
        indicator(1),
        serde_json::json!({"indicator": "evil.example.com", "tags": "c2"}),
        serde_json::json!({"indicator": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "tags": "malware"}),
    ])
    .await;

    let mut names = Vec::new();
    for _ in 0..3 {
        let bundle: serde_json::Value = serde_json::from_str(&stix.line().await).unwrap();
        assert_eq!(bundle["type"], "bundle", "{bundle}");
        assert!(
            bundle["id"].as_str().unwrap().starts_with("bundle--"),
            "{bundle}"
        );
        let indicator = &bundle["objects"][0];
        assert_eq!(indicator["type"], "indicator", "{bundle}");
        assert_eq!(indicator["spec_version"], "2.1", "{bundle}");
        names.push(indicator["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        names,
        [
            ip(1).as_str(),
            "evil.example.com",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        ]
    );

    // The cursor file moves past the last one only once the dataset file holds what came
    // before it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while std::fs::read_to_string(&cursor_file)
        .unwrap_or_default()
        .trim()
        != ids[2]
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dataset consumer did not get to {}",
            ids[2]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = std::fs::read_to_string(&dataset).unwrap();
    // Lines are kept sorted; `ZXZpbC5leGFtcGxlLmNvbQ==` is `evil.example.com`.
    let mut expected = vec![ip(1), "ZXZpbC5leGFtcGxlLmNvbQ==".to_owned()];
    expected.sort();
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
}
