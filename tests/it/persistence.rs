//! `sluice up`'s default log outlives the process: a restart keeps the indicators and every
//! client's cursor (no `reset`), and a `kill -9` in the middle of a publishing burst loses no
//! indicator that was acknowledged with 202.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::Frame;
use serde_json::Value;

use crate::harness::*;

fn options(dir: &std::path::Path, port: u16, admin_token: &str) -> NodeOptions {
    NodeOptions {
        data_dir: Some(dir.to_path_buf()),
        port: Some(port),
        admin_token: Some(admin_token.to_owned()),
        args: vec!["--no-correlator".into()],
        ..NodeOptions::default()
    }
}

#[tokio::test]
async fn a_restart_keeps_the_log_and_every_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let token = billing::ApiToken::generate().expose().to_owned();
    let mut node = Node::start(options(dir.path(), port, &token)).await;
    let mut socket = ws_connect(&node.ws("/v1/stream"), Some(&token))
        .await
        .unwrap();
    let Frame::Hello { cursor: hello, .. } = ws_typed_frame(&mut socket).await else {
        panic!("the stream does not start with `hello`");
    };
    let ids = node
        .publish_all(&(0..10).map(indicator).collect::<Vec<_>>())
        .await;
    let seen = ws_indicators(&mut socket, 5).await;
    drop(socket);
    node.signal("TERM");
    assert!(node.wait_exit().await.success());

    let node = Node::start(options(dir.path(), port, &token)).await;
    assert!(
        node.logs().contains("log resumed: 10 entries"),
        "{}",
        node.logs()
    );
    // A client resumes from the last cursor it saw: the rest, nothing repeated, no `reset`.
    let resume_from = &seen.last().unwrap().0;
    let url = node.ws(&format!("/v1/stream?cursor={resume_from}"));
    let mut socket = ws_connect(&url, Some(&token)).await.unwrap();
    let Frame::Hello { cursor, .. } = ws_typed_frame(&mut socket).await else {
        panic!("the stream does not start with `hello`");
    };
    assert_eq!(cursor.to_string(), *resume_from);
    let later = node
        .publish_all(&(10..12).map(indicator).collect::<Vec<_>>())
        .await;
    let rest: Vec<String> = ws_indicators(&mut socket, 7)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let expected: Vec<String> = ids[5..].iter().chain(&later).cloned().collect();
    assert_eq!(rest, expected);

    // So does a client that connected to the empty log and never saw an indicator: its
    // `hello` cursor is still valid, and it gets everything.
    let url = node.ws(&format!("/v1/stream?cursor={hello}"));
    let mut socket = ws_connect(&url, Some(&token)).await.unwrap();
    let Frame::Hello { .. } = ws_typed_frame(&mut socket).await else {
        panic!("the stream does not start with `hello`");
    };
    let all: Vec<String> = ws_indicators(&mut socket, 12)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(all, ids.iter().chain(&later).cloned().collect::<Vec<_>>());
}

/// Several publishers post batches as fast as they can; the node is killed with SIGKILL in the
/// middle. After a restart on the same directory, every indicator that was answered with 202
/// is in the log, under the same epoch, in the order of its cursor.
#[tokio::test]
async fn kill_9_mid_burst_loses_no_acknowledged_indicator() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let token = billing::ApiToken::generate().expose().to_owned();
    let mut node = Node::start(options(dir.path(), port, &token)).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let (url, token, acknowledged) = (
                node.http("/v1/indicators"),
                token.clone(),
                acknowledged.clone(),
            );
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for round in 0.. {
                    let batch: Vec<Value> = (0..20)
                        .map(|k| indicator(p * 100_000 + round * 20 + k))
                        .collect();
                    let Ok(response) = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&batch)
                        .send()
                        .await
                    else {
                        return;
                    };
                    if response.status() != 202 {
                        return;
                    }
                    let Ok(answer) = response.json::<Value>().await else {
                        return;
                    };
                    let ids = answer["ids"].as_array().unwrap();
                    acknowledged
                        .lock()
                        .unwrap()
                        .extend(ids.iter().map(|id| id.as_str().unwrap().to_owned()));
                }
            })
        })
        .collect();
    // Mid-burst: once a few hundred are in.
    let deadline = tokio::time::Instant::now() + WAIT;
    while acknowledged.lock().unwrap().len() < 400 {
        assert!(tokio::time::Instant::now() < deadline, "publishing stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.signal("KILL");
    node.wait_exit().await;
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let epoch = acknowledged[0]
        .parse::<domain::Cursor>()
        .unwrap()
        .epoch()
        .to_owned();

    let node = Node::start(options(dir.path(), port, &token)).await;
    let mut socket = ws_connect(&node.ws("/v1/stream?cursor=earliest"), Some(&token))
        .await
        .unwrap();
    let Frame::Hello { cursor, .. } = ws_typed_frame(&mut socket).await else {
        panic!("the stream does not start with `hello`");
    };
    assert_eq!(cursor.epoch(), epoch, "the log started a new epoch");
    // The replay holds every acknowledged cursor (and perhaps a few that were committed but
    // not yet answered when the process died); a missing one leaves the wait to time out.
    let mut missing: std::collections::HashSet<String> = acknowledged.iter().cloned().collect();
    let mut replayed = 0;
    while !missing.is_empty() {
        let frame = ws_frame(&mut socket).await;
        assert_eq!(frame["type"], "indicator", "unexpected frame {frame}");
        missing.remove(frame["id"].as_str().unwrap());
        replayed += 1;
    }
    assert!(replayed >= acknowledged.len());
}
