//! Autobahn WebSocket conformance of the production WebSocket settings, with kosoku (PyPI), a
//! runner of the Autobahn TestSuite's own cases. `scripts/test` installs it.
//!
//! Autobahn's fuzzing client needs an echo server; this one applies exactly the settings
//! `/v1/stream` uses (`gateway::stream::ws::configure`) and reads until the socket ends, as the
//! stream handler does. Excluded, on purpose:
//! - 9.* (limits/performance): they send messages up to 16 MiB; our limit is 64 KiB by design
//!   (such messages are closed with 1009, covered by the e2e tests);
//! - 12.* and 13.* (permessage-deflate): compression is not offered.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use axum::Router;

async fn echo(upgrade: WebSocketUpgrade) -> axum::response::Response {
    gateway::stream::ws::configure(upgrade, &gateway::Config::default()).on_upgrade(serve_echo)
}

async fn serve_echo(mut socket: WebSocket) {
    // Keep reading after a Close: tungstenite sends the close reply on the next read.
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, Message::Text(_) | Message::Binary(_))
            && socket.send(message).await.is_err()
        {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_websocket_settings_pass_autobahn() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new().route("/", get(echo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let reports = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new("python3")
        .args([
            "-c",
            "import sys; from kosoku._cli import main; sys.exit(main())",
        ])
        .arg(format!("ws://{address}"))
        .args(["-x", "9.*", "-x", "12.*", "-x", "13.*", "-p", "4", "-o"])
        .arg(reports.path())
        .output()
        .await
        .expect("python3 is needed to run kosoku");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'kosoku'"),
        "kosoku is not installed: run scripts/test (it installs it with pip)"
    );
    assert!(
        output.status.success(),
        "Autobahn cases failed:\n{stdout}\n{stderr}"
    );
    let passed: usize = stdout
        .lines()
        .find_map(|line| line.strip_suffix(" cases passed"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        passed > 200,
        "expected the whole selection to run, got:\n{stdout}"
    );
}
