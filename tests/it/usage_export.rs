//! `sluice usage export`: each account's month of metered usage with its plan and price, as CSV
//! or JSON, read from the account database a live node reports into.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

#[tokio::test]
async fn a_month_of_usage_is_exported_per_account_with_its_plan() {
    let node = Node::start(NodeOptions {
        args: vec!["--usage-flush-interval".into(), "1s".into()],
        ..NodeOptions::default()
    })
    .await;
    node.create_account("acme", "pro").await;
    node.create_account("quiet", "hobby").await;
    let token = node.create_token("acme", "read").await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    ws_frame(&mut socket).await;
    node.publish_all(&(0..3).map(indicator).collect::<Vec<_>>())
        .await;
    ws_indicators(&mut socket, 3).await;
    // A stream reports its deliveries as it sends and when it ends.
    ws_send_close(&mut socket).await;

    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let csv = loop {
        let output = node.cli(&["usage", "export", "--month", &month]).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let csv = String::from_utf8(output.stdout).unwrap();
        if csv.contains(&format!("{month},acme,pro,5000,1,3,")) {
            break csv;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "usage never arrived:\n{csv}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("month,account,plan,price_cents,days,delivered,dropped,bytes,connections,peak_connections")
    );
    assert!(
        csv.contains(&format!("{month},quiet,hobby,2500,0,0,0,0,0,0")),
        "an account without usage is listed with zeros:\n{csv}"
    );

    let output = node
        .cli(&["usage", "export", "--month", &month, "--format", "json"])
        .await;
    assert!(output.status.success());
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    let acme = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["account"] == "acme")
        .unwrap();
    assert_eq!(acme["month"], month.as_str());
    assert_eq!(acme["delivered"], 3);
    assert_eq!(acme["connections"], 1);
    assert!(acme["bytes"].as_u64().unwrap() > 0);

    // Another month has none of it.
    let output = node.cli(&["usage", "export", "--month", "2001-01"]).await;
    let csv = String::from_utf8(output.stdout).unwrap();
    assert!(csv.contains("2001-01,acme,pro,5000,0,0,0,0,0,0"), "{csv}");

    for bad in ["2026-13", "2026-1", "November", "2026-11-01"] {
        let output = node.cli(&["usage", "export", "--month", bad]).await;
        assert_eq!(output.status.code(), Some(64), "--month {bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("month"), "{stderr}");
    }
}
