//! Process lifecycle: shutdown, liveness, configuration errors, the CLI.

use std::time::Duration;

use domain::CloseCode;

use crate::harness::*;
use crate::{start, Backend};

/// SIGTERM: every WebSocket gets 1001 with its last delivered cursor, and the process exits.
#[tokio::test]
async fn sigterm_closes_streams_with_1001_and_the_cursor() {
    let (mut node, _redis) = start(Backend::Sqlite, &[]).await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    let ids = node
        .publish_all(&(0..3).map(indicator).collect::<Vec<_>>())
        .await;
    ws_indicators(&mut socket, 3).await;
    node.signal("TERM");
    let (code, reason) = ws_close_code(&mut socket).await;
    assert_eq!(code, CloseCode::Shutdown.code());
    assert!(
        reason.contains(&ids[2]),
        "close reason {reason:?} lacks the last cursor {}",
        ids[2]
    );
    assert!(node.wait_exit().await.success());
}

/// A peer that answers no pings is closed after the idle timeout.
#[tokio::test]
async fn silent_peer_is_closed() {
    let (node, _redis) = start(
        Backend::Sqlite,
        &["--ws-ping-interval", "100ms", "--ws-idle-timeout", "500ms"],
    )
    .await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    // Not reading means tungstenite answers no pings: the server sees silence.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, _) = ws_close_code(&mut socket).await;
    assert_eq!(code, CloseCode::Policy.code());
}

/// The close codes are docs/protocol.md §4.7's numbers, which clients act on: the tests name
/// them by [`CloseCode`], and this holds each name to its number.
#[test]
fn close_codes_are_the_documented_numbers() {
    let documented = [
        (CloseCode::Shutdown, 1001),
        (CloseCode::ProtocolError, 1002),
        (CloseCode::InvalidData, 1007),
        (CloseCode::Policy, 1008),
        (CloseCode::TooBig, 1009),
        (CloseCode::TokenRevoked, 4001),
        (CloseCode::SlowConsumer, 4009),
        (CloseCode::PlanDisallows, 4010),
    ];
    assert_eq!(documented.len(), CloseCode::ALL.len());
    for (code, number) in documented {
        assert_eq!(code.code(), number, "{code:?}");
    }
}

#[tokio::test]
async fn bad_configuration_exits_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["up", "--listen", "nowhere"][..],
        &["up", "--retention", "forever"],
        &["up", "--database", "mysql://x"],
        &["tokens", "create", "--account", "a", "--scope", "god"],
        &["publish", "--format", "xml", "-"],
        &["up", "--change-poll-interval", "0s"],
        &["up", "--usage-flush-interval", "0ms"],
        &["up", "--ws-ping-interval", "0s"],
        &["up", "--sse-heartbeat", "0s"],
        &["up", "--slow-consumer-timeout", "0s"],
        &["up", "--retention", "100y"],
        &[
            "up",
            "--ws-ping-interval",
            "30s",
            "--ws-idle-timeout",
            "30s",
        ],
        &["up", "--memory-log-max-entries", "0"],
        &["up", "--log-max-bytes", "1KiB"],
        &["up", "--log", "disk"],
        &["up", "--log-fsync", "sometimes"],
        &["up", "--log", "memory", "--redis", "redis://127.0.0.1:1/"],
        &["up", "--demo-rate", "0"],
        &["up", "--jwt-secret", "short"],
        &[
            "up",
            "--billing-test-mode",
            "--billing-webhook-secret",
            "whsec_1",
        ],
        &[
            "gateway",
            "--redis",
            "redis://127.0.0.1:1/",
            "--sse-heartbeat",
            "0s",
        ],
        &["publish", "--batch", "0", "-"],
        &["stream", "--token", "t", "--max-backoff", "0s"],
        &["stream"],
        &["stream", "--token", "t", "--itype", "ipv9"],
        &["stream", "--token", "t", "--confidence", "eleven"],
        &["stream", "--token", "t", "--url", "ftp://example.com"],
        &["stream", "--token", "t", "--cursor", "yesterday"],
    ] {
        let output = run_cli(args, dir.path()).await;
        assert_eq!(output.status.code(), Some(64), "{args:?}: {output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
    let output = tokio::process::Command::new(sluice_binary())
        .args(["up", "--data-dir"])
        .arg(dir.path())
        .env("SLUICE_ADMIN_TOKEN", "not-a-token")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SLUICE_ADMIN_TOKEN"));
}

/// An unreachable Redis is no configuration error: exit 1 (docs/protocol.md §1.7, which
/// deploy/README.md's restart policy relies on), naming `--redis`, for every role that needs it.
#[tokio::test]
async fn an_unreachable_redis_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("redis://127.0.0.1:{}/", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    for args in [
        &["up", "--redis", &nowhere, "--listen", &listen][..],
        &["gateway", "--redis", &nowhere, "--listen", &listen],
        &["correlator", "--redis", &nowhere],
    ] {
        let output = tokio::time::timeout(WAIT, run_cli(args, dir.path()))
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        let last = stderr.trim_end().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("sluice: error: --redis"),
            "{args:?}: {stderr}"
        );
    }
}

/// First start prints the admin token once and writes it with mode 0600; it works.
#[tokio::test]
async fn first_start_bootstraps_the_admin_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = tokio::process::Command::new(sluice_binary())
        .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .env_remove("SLUICE_ADMIN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let path = dir.path().join("admin.token");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !path.exists() || std::fs::read_to_string(&path).unwrap().trim().is_empty() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert!(token.starts_with("slc_"));
    let deadline = tokio::time::Instant::now() + WAIT;
    while reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "server never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("ws://127.0.0.1:{port}/v1/stream");
    let mut socket = ws_connect(&url, Some(&token)).await.unwrap();
    assert_eq!(ws_frame(&mut socket).await["plan"], "enterprise");
    child.start_kill().unwrap();
    let stdout = child.wait_with_output().await.unwrap().stdout;
    assert!(String::from_utf8_lossy(&stdout).contains(&token));
    // The stream-token key was made beside it, as private, and is kept across restarts.
    let key = dir.path().join("jwt.secret");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);
}

/// No shipped file carries a stream-token key (anyone could sign tokens with it), and a
/// published placeholder is refused.
#[tokio::test]
async fn no_default_jwt_secret_is_shipped_or_accepted() {
    let compose = include_str!("../../deploy/compose.yaml");
    let line = compose
        .lines()
        .find(|line| line.trim_start().starts_with("SLUICE_JWT_SECRET:"))
        .expect("compose passes SLUICE_JWT_SECRET");
    assert!(
        line.contains("${SLUICE_JWT_SECRET:?"),
        "a default is shipped: {line}"
    );
    assert!(
        !compose.contains("SLUICE_BILLING_TEST_MODE: "),
        "test mode is shipped on"
    );
    let dir = tempfile::tempdir().unwrap();
    for secret in [
        "laptop-only-jwt-secret-change-me-0000",
        "change-me-change-me-change-me-change-me",
    ] {
        let output = run_cli(&["up", "--jwt-secret", secret], dir.path()).await;
        assert_eq!(output.status.code(), Some(64), "{output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("placeholder"), "{stderr}");
    }
}

/// `sluice publish` reads a real feed file and sends it; rejections are reported per line.
#[tokio::test]
async fn publish_cli_sends_a_feed_file() {
    let (node, _redis) = start(Backend::Sqlite, &[]).await;
    node.create_account("spamhaus", "pro").await;
    let token = node.create_token("spamhaus", "write").await;
    assert!(token.starts_with("slc_") && !token.contains('\n'));
    let mut socket = ws_connect(
        &node.ws("/v1/stream?provider=spamhaus"),
        Some(&node.admin_token),
    )
    .await
    .unwrap();
    ws_frame(&mut socket).await;
    let feed = concat!(env!("CARGO_MANIFEST_DIR"), "/data/feeds/spamhaus_drop.txt");
    let output = tokio::process::Command::new(sluice_binary())
        .args([
            "publish",
            feed,
            "--tags",
            "hijacked",
            "--url",
            &node.http(""),
        ])
        .env("SLUICE_TOKEN", &token)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary = stderr.lines().last().unwrap();
    let published: usize = summary.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(published > 100, "{summary}");
    let first = ws_frame(&mut socket).await;
    assert_eq!(first["data"]["itype"], "cidr");
    assert_eq!(first["data"]["provider"], "spamhaus");
    assert!(first["data"]["tags"]
        .as_array()
        .unwrap()
        .contains(&"hijacked".into()));
    // Secrets never reach the logs, whatever happened above.
    let logs = node.logs();
    assert!(!logs.contains(&token) && !logs.contains(&node.admin_token));
}
