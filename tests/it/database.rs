//! The account store on PostgreSQL, end to end: the CLI and the server share one database.

use testkit::PgDatabase;

use crate::harness::*;

#[tokio::test]
async fn postgres_backed_node_streams_with_cli_created_tokens() {
    let database = PgDatabase::create().await.unwrap();
    let node = Node::start(NodeOptions {
        database: Some(database.url().to_owned()),
        ..NodeOptions::default()
    })
    .await;
    let with_db = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--database".to_owned(), database.url().to_owned()]);
        all
    };
    let args = with_db(&["accounts", "create", "acme", "--plan", "hobby"]);
    let output = node
        .cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let args = with_db(&["tokens", "create", "--account", "acme"]);
    let output = node
        .cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    assert_eq!(ws_frame(&mut socket).await["plan"], "hobby");
    let ids = node.publish_all(&[indicator(7)]).await;
    assert_eq!(ws_indicators(&mut socket, 1).await[0].0, ids[0]);

    // Revoked tokens are refused at the next handshake.
    let args = with_db(&["tokens", "list", "--account", "acme"]);
    let output = node
        .cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let listing = String::from_utf8(output.stdout).unwrap();
    assert!(
        !listing.contains(&token),
        "tokens list must never show a secret"
    );
    let id = listing
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let args = with_db(&["tokens", "revoke", &id]);
    let output = node
        .cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Nodes cache authenticated tokens; the change log evicts a revoked one within a poll
    // interval (1 s), well inside the 5 s of docs/protocol.md §5.5.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match ws_connect(&node.ws("/v1/stream"), Some(&token)).await {
            Err(status) => {
                assert_eq!(status, 401);
                break;
            }
            Ok(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "a revoked token still opens streams after 5 s"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(node);
    database.drop_database().await.unwrap();
}
