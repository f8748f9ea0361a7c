//! The real firehose clients security teams run, unmodified, against Sluice (docs/protocol.md
//! §10):
//! `csirtg-firehose` (csirtgsdk 1.1.5 on websocket-client 0.46.0) on `/firehose`, and
//! `cif-firehose` (cifsdk 4.0) pointed here with `CIF_REMOTE_WS`. `scripts/test` installs them
//! in virtualenvs under `target/compat` (or `SLUICE_COMPAT_DIR`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::harness::*;

fn compat_dir() -> PathBuf {
    let dir = std::env::var_os("SLUICE_COMPAT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/compat"));
    assert!(
        dir.join("csirtg/bin/python").exists() && dir.join("cif/bin/cif-firehose").exists(),
        "the firehose clients are not installed in {}: run scripts/test, which installs them",
        dir.display()
    );
    dir
}

/// csirtg-firehose's URL is hard-coded (`wss://csirtg.io/firehose`); this rebinds only that,
/// then runs the client's own `main`.
const CSIRTG_WRAPPER: &str = r#"
import sys
import csirtgsdk.client.firehose as firehose
defaults = list(firehose.DefaultHandler.__init__.__defaults__)
defaults[0] = sys.argv.pop(1)
firehose.DefaultHandler.__init__.__defaults__ = tuple(defaults)
sys.argv[0] = 'csirtg-firehose'
firehose.main()
"#;

struct Client {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Client {
    fn csirtg(url: &str, token: &str, dir: &std::path::Path) -> Client {
        let wrapper = dir.join("csirtg_firehose.py");
        std::fs::write(&wrapper, CSIRTG_WRAPPER).unwrap();
        let mut command = Command::new(compat_dir().join("csirtg/bin/python"));
        command.arg(&wrapper).arg(url).env("CSIRTG_TOKEN", token);
        Client::spawn(command)
    }

    fn cif(url: &str, token: &str) -> Client {
        let mut command = Command::new(compat_dir().join("cif/bin/cif-firehose"));
        command.env("CIF_REMOTE_WS", url).env("CIF_TOKEN", token);
        Client::spawn(command)
    }

    fn spawn(mut command: Command) -> Client {
        let mut child = command
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start the firehose client");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Client { child, lines }
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("the client printed nothing in time")
            .unwrap()
            .expect("the client ended its output")
    }

    /// Waits for it to exit; returns (success, stdout rest, stderr).
    async fn finish(mut self) -> (bool, String, String) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        let mut rest = String::new();
        while let Ok(Some(line)) = self.lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = err.read_to_string(&mut stderr).await;
        }
        (status.success(), rest, stderr)
    }
}

/// Waits until `n` WebSocket streams are open on the node.
async fn wait_connected(node: &Node, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let open: usize = node
            .metrics()
            .await
            .lines()
            .filter(|line| {
                line.starts_with("sluice_connections{") && line.contains("transport=\"ws\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<usize>().ok())
            .sum();
        if open >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client did not connect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reports() -> Vec<Value> {
    vec![
        json!({"indicator": "185.220.101.7", "tags": ["scanner", "ssh"], "confidence": 7.5, "lasttime": "2026-11-23T11:00:00Z"}),
        json!({"indicator": "evil.example.com", "tags": "c2", "confidence": 10}),
    ]
}

#[tokio::test]
async fn csirtg_firehose_prints_the_stream() {
    let node = Node::start(NodeOptions::default()).await;
    node.create_account("analyst", "hobby").await;
    let token = node.create_token("analyst", "read").await;
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::csirtg(&node.ws("/firehose"), &token, dir.path());
    wait_connected(&node, 1).await;
    node.publish_all(&reports()).await;
    let first: Value = serde_json::from_str(&client.line().await).unwrap();
    assert_eq!(first["indicator"], "185.220.101.7");
    assert_eq!(
        first["tags"], "scanner,ssh",
        "csirtg.io joins tags with commas"
    );
    assert_eq!(first["provider"], "admin");
    assert_eq!(first["lasttime"], "2026-11-23T11:00:00Z");
    assert_eq!(first["confidence"], 7.5);
    let second: Value = serde_json::from_str(&client.line().await).unwrap();
    assert_eq!(second["indicator"], "evil.example.com");
    // ActionCable pings (every 3 s) are not indicators: nothing else was printed meanwhile.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    node.publish_all(&[indicator(9)]).await;
    let third: Value = serde_json::from_str(&client.line().await).unwrap();
    assert_eq!(third["indicator"], ip(9));
}

#[tokio::test]
async fn cif_firehose_prints_the_stream_in_cifv4_terms() {
    let node = Node::start(NodeOptions::default()).await;
    let mut client = Client::cif(&node.ws("/firehose"), &node.admin_token);
    wait_connected(&node, 1).await;
    assert_eq!(client.line().await, "\"connected\"");
    node.publish_all(&reports()).await;
    let first: Value = serde_json::from_str(&client.line().await).unwrap();
    assert_eq!(first["indicator"], "185.220.101.7");
    assert_eq!(first["tags"], json!(["scanner", "ssh"]));
    assert_eq!(first["confidence"], 3.0, "CIFv4's 0–4 scale");
    assert_eq!(first["last_at"], "2026-11-23T11:00:00Z");
    assert!(first["reported_at"].is_string() && first.get("reporttime").is_none());
    let second: Value = serde_json::from_str(&client.line().await).unwrap();
    assert_eq!(second["confidence"], 4.0);

    // Any URL works for cif-firehose, filters included; `ping` every 5 s is answered quietly.
    let mut filtered = Client::cif(&node.ws("/cif/firehose?itype=fqdn"), &node.admin_token);
    wait_connected(&node, 2).await;
    assert_eq!(filtered.line().await, "\"connected\"");
    tokio::time::sleep(Duration::from_millis(5500)).await;
    node.publish_all(&reports()).await;
    let only: Value = serde_json::from_str(&filtered.line().await).unwrap();
    assert_eq!(only["indicator"], "evil.example.com");
}

#[tokio::test]
async fn both_clients_are_refused_at_the_handshake() {
    let node = Node::start(NodeOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    for client in [
        Client::csirtg(&node.ws("/firehose"), "slc_bogus", dir.path()),
        Client::cif(&node.ws("/firehose"), "slc_bogus"),
    ] {
        let (_, stdout, stderr) = client.finish().await;
        assert!(stdout.trim().is_empty(), "{stdout}");
        assert!(
            stderr.contains("401"),
            "the client reports the HTTP status: {stderr}"
        );
    }
    // Over the plan's connection cap (free: 1), the next one is refused with 429, not in-band.
    node.create_account("sampler", "free").await;
    let free = node.create_token("sampler", "read").await;
    let _first = Client::csirtg(&node.ws("/firehose"), &free, dir.path());
    wait_connected(&node, 1).await;
    let (_, stdout, stderr) = Client::csirtg(&node.ws("/firehose"), &free, dir.path())
        .finish()
        .await;
    assert!(stdout.trim().is_empty(), "{stdout}");
    assert!(stderr.contains("429"), "{stderr}");
}
