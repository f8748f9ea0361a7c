//! `sluice admin`: administration of a running node over its HTTP API (docs/protocol.md §6.8),
//! as opposed to `accounts`, `plans` and `tokens`, which work on the database.

use anyhow::Context;
use serde_json::Value;

use crate::cli::{AdminCommand, RemoteArgs};
use crate::exit;

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Connections {
            account,
            sort,
            json,
            node,
        } => connections(&node, account.as_deref(), &sort, json).await,
        AdminCommand::Close { id, node } => close(&node, &id).await,
    }
}

fn token(node: &RemoteArgs) -> anyhow::Result<&str> {
    node.token
        .as_deref()
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            exit::config(
                "--token (SLUICE_TOKEN) is required: an `admin` token (`sluice tokens create --account NAME --scope admin`)",
            )
        })
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// The error of an answer that is not a success, in the API's own words when it has them.
async fn refused(endpoint: &str, response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let message = response
        .json::<Value>()
        .await
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| status.to_string());
    anyhow::anyhow!("{endpoint} answered {status}: {message}")
}

async fn connections(
    node: &RemoteArgs,
    account: Option<&str>,
    sort: &str,
    json: bool,
) -> anyhow::Result<()> {
    let token = token(node)?;
    let endpoint = format!("{}/v1/admin/connections", node.url.trim_end_matches('/'));
    let client = client()?;
    let mut after: Option<String> = None;
    let mut all = Vec::new();
    let mut answered_by;
    let mut scope;
    let mut nodes;
    loop {
        let mut query = vec![("sort", sort.to_owned()), ("limit", "1000".to_owned())];
        if let Some(account) = account {
            query.push(("account", account.to_owned()));
        }
        if let Some(after) = &after {
            query.push(("after", after.clone()));
        }
        let response = client
            .get(&endpoint)
            .bearer_auth(token)
            .query(&query)
            .send()
            .await
            .with_context(|| format!("cannot reach {endpoint} (set --url / SLUICE_URL)"))?;
        if !response.status().is_success() {
            return Err(refused(&endpoint, response).await);
        }
        let mut page: Value = response
            .json()
            .await
            .context("unexpected answer from the node")?;
        answered_by = page["node"].take();
        scope = page["scope"].take();
        nodes = page["nodes"].take();
        if let Some(connections) = page["connections"].as_array_mut() {
            all.append(connections);
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    if json {
        let answer = serde_json::json!({
            "node": answered_by, "scope": scope, "nodes": nodes, "connections": all, "next": null,
        });
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    print!("{}", table(&all));
    let node_count = nodes.as_array().map_or(1, Vec::len);
    match scope.as_str() {
        Some("cluster") => eprintln!(
            "{} stream(s) on {node_count} node(s), the cluster's (asked {})",
            all.len(),
            answered_by.as_str().unwrap_or("?")
        ),
        _ => eprintln!(
            "{} stream(s) on node {} (this node's only)",
            all.len(),
            answered_by.as_str().unwrap_or("?")
        ),
    }
    Ok(())
}

/// The connection list as a table: id, node, account, plan, transport/dialect, remote, since,
/// delivered, dropped, lag in seconds (`*` when near retention).
fn table(connections: &[Value]) -> String {
    let text = |value: &Value| value.as_str().unwrap_or("-").to_owned();
    let mut out = format!(
        "{:<10} {:<22} {:<16} {:<12} {:<16} {:<22} {:<24} {:>10} {:>8} {:>9}\n",
        "ID",
        "NODE",
        "ACCOUNT",
        "PLAN",
        "TRANSPORT",
        "REMOTE",
        "SINCE",
        "DELIVERED",
        "DROPPED",
        "LAG S"
    );
    for connection in connections {
        let lag = &connection["lag"];
        let near = if lag["near_retention"] == true {
            "*"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<10} {:<22} {:<16} {:<12} {:<16} {:<22} {:<24} {:>10} {:>8} {:>9}\n",
            text(&connection["id"]),
            text(&connection["node"]),
            text(&connection["account"]),
            text(&connection["plan"]),
            format!(
                "{}/{}",
                text(&connection["transport"]),
                text(&connection["dialect"])
            ),
            text(&connection["remote"]),
            text(&connection["connected_at"]),
            connection["delivered"].as_u64().unwrap_or(0),
            connection["dropped"].as_u64().unwrap_or(0),
            format!("{:.1}{near}", lag["seconds"].as_f64().unwrap_or(0.0)),
        ));
    }
    out
}

async fn close(node: &RemoteArgs, id: &str) -> anyhow::Result<()> {
    let token = token(node)?;
    let endpoint = format!(
        "{}/v1/admin/connections/{id}",
        node.url.trim_end_matches('/')
    );
    let response = client()?
        .delete(&endpoint)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {endpoint} (set --url / SLUICE_URL)"))?;
    if !response.status().is_success() {
        return Err(refused(&endpoint, response).await);
    }
    println!("closed connection {id}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_connection_and_marks_near_retention() {
        let rows = [
            serde_json::json!({"id": "c_0", "account": "alpha", "plan": "pro", "transport": "ws",
                "dialect": "native", "remote": "127.0.0.1:5000", "connected_at": "2026-12-04T04:00:00.000Z",
                "delivered": 12, "dropped": 1, "lag": {"seconds": 2.5, "entries": 3, "near_retention": true}}),
            serde_json::json!({"id": "c_1", "account": "beta", "plan": "hobby", "transport": "sse",
                "dialect": "native", "remote": null, "connected_at": "2026-12-04T04:01:00.000Z",
                "delivered": 0, "dropped": 0, "lag": {"seconds": 0.0, "entries": 0, "near_retention": false}}),
        ];
        let table = table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("ID"), "{table}");
        assert!(
            lines[1].contains("alpha") && lines[1].contains("ws/native"),
            "{table}"
        );
        assert!(lines[1].trim_end().ends_with("2.5*"), "{table}");
        assert!(
            lines[2].contains("sse/native") && lines[2].trim_end().ends_with("0.0"),
            "{table}"
        );
    }
}
