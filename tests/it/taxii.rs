//! The TAXII 2.1 server (docs/protocol.md §12), walked by the real OASIS `taxii2-client`
//! (2.3.0, installed by `scripts/test` under `target/compat/taxii`) while indicators are
//! published, and its HTTP contract checked request by request: media types, errors,
//! credentials, plans, versions and paging.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::Command;

use crate::harness::*;

const TAXII: &str = "application/taxii+json;version=2.1";

fn client_python() -> PathBuf {
    let dir = std::env::var_os("SLUICE_COMPAT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/compat"));
    let python = dir.join("taxii/bin/python");
    assert!(
        python.exists(),
        "taxii2-client is not installed in {}: run scripts/test, which installs it",
        dir.join("taxii").display()
    );
    python
}

/// Walks discovery → API root → the `indicators` collection → every page of its objects with
/// the client's own pager (`as_pages`), optionally from `added_after`. Prints the objects and
/// the last page's `X-TAXII-Date-Added-Last`.
const WALK: &str = r#"
import json, sys
from requests.structures import CaseInsensitiveDict
from taxii2client.v21 import Server, as_pages
url, token, per_request = sys.argv[1], sys.argv[2], int(sys.argv[3])
added_after = sys.argv[4] if len(sys.argv) > 4 else None
server = Server(url, user="taxii", password=token)
root = server.default
assert root.versions == ["application/taxii+json;version=2.1"], root.versions
collection = next(c for c in root.collections if c.alias == "indicators")
assert collection.can_read and not collection.can_write
headers = CaseInsensitiveDict()
# The client returns bodies only: the last response's headers, from a requests hook.
collection._conn.session.hooks["response"].append(lambda r, *a, **k: headers.update(r.headers))
def get_objects(**kwargs):
    if added_after:
        kwargs["added_after"] = added_after
    return collection.get_objects(**kwargs)
objects, pages = [], 0
for envelope in as_pages(get_objects, per_request=per_request):
    pages += 1
    objects.extend(envelope.get("objects", []))
print(json.dumps({"objects": objects, "pages": pages,
                  "last": headers.get("X-TAXII-Date-Added-Last")}))
"#;

async fn walk(node: &Node, per_request: usize, added_after: Option<&str>) -> Value {
    let mut command = Command::new(client_python());
    command
        .arg("-c")
        .arg(WALK)
        .arg(node.http("/taxii2/"))
        .arg(&node.admin_token)
        .arg(per_request.to_string());
    if let Some(added_after) = added_after {
        command.arg(added_after);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("taxii2-client did not finish")
        .unwrap();
    assert!(
        output.status.success(),
        "taxii2-client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The indicator each object names (`name` is the normalised indicator).
fn names(walked: &Value) -> Vec<String> {
    walked["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| {
            assert_eq!(object["type"], "indicator", "{object}");
            assert_eq!(object["spec_version"], "2.1", "{object}");
            object["name"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn taxii2_client_pages_exactly_while_indicators_are_published() {
    let node = Node::start(NodeOptions::default()).await;
    let mut stream = ws_connect(&node.ws("/v1/stream"), Some(&node.admin_token))
        .await
        .unwrap();
    ws_frame(&mut stream).await;
    let before: Vec<Value> = (0..120).map(indicator).collect();
    node.publish_all(&before).await;

    // 300 more while the client walks, in small batches.
    let publishing = {
        let (url, token) = (node.http("/v1/indicators"), node.admin_token.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for batch in 0..30 {
                let items: Vec<Value> =
                    (0..10).map(|i| indicator(1_000 + batch * 10 + i)).collect();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&items)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let first = walk(&node, 25, None).await;
    publishing.await.unwrap();
    let all: BTreeSet<String> = (0..120).chain(1_000..1_300).map(ip).collect();
    let delivered: BTreeSet<String> = ws_indicators(&mut stream, all.len())
        .await
        .into_iter()
        .map(|(_, indicator)| indicator)
        .collect();
    assert_eq!(delivered, all, "the stream delivered what was published");

    let first_names = names(&first);
    assert!(first["pages"].as_u64().unwrap() >= 5, "{}", first["pages"]);
    let first_set: BTreeSet<String> = first_names.iter().cloned().collect();
    assert_eq!(first_set.len(), first_names.len(), "an object was repeated");
    for indicator in (0..120).map(ip) {
        assert!(first_set.contains(&indicator), "{indicator} was skipped");
    }

    // What arrived after the walk's last page, from its X-TAXII-Date-Added-Last: exactly the rest.
    let last = first["last"]
        .as_str()
        .expect("the last page had objects")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rest = walk(&node, 1_000, Some(&last)).await;
    let rest_names = names(&rest);
    let rest_set: BTreeSet<String> = rest_names.iter().cloned().collect();
    assert_eq!(rest_set.len(), rest_names.len(), "an object was repeated");
    assert!(
        first_set.is_disjoint(&rest_set),
        "resuming from X-TAXII-Date-Added-Last repeated objects"
    );
    let union: BTreeSet<String> = first_set.union(&rest_set).cloned().collect();
    assert_eq!(union, delivered, "TAXII and the stream disagree");
}

/// A GET of a TAXII path with `Accept` and Basic credentials; returns status, headers and body.
async fn get(
    node: &Node,
    path: &str,
    token: Option<&str>,
    accept: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .get(node.http(path))
        .header("accept", accept);
    if let Some(token) = token {
        request = request.basic_auth("anyone", Some(token));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

fn content_type(headers: &reqwest::header::HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
}

async fn collection_id(node: &Node, alias: &str) -> String {
    let (status, _, body) = get(
        node,
        "/taxii2/api/collections/",
        Some(&node.admin_token),
        TAXII,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|collection| collection["alias"] == alias)
        .unwrap_or_else(|| panic!("no {alias} collection: {body}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn taxii_answers_its_media_type_and_its_errors() {
    let node = Node::start(NodeOptions::default()).await;
    let admin = node.admin_token.as_str();

    let (status, headers, body) = get(&node, "/taxii2/", Some(admin), TAXII).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type(&headers), TAXII);
    assert_eq!(body["default"], "/taxii2/api/");

    // Content negotiation: a TAXII 2.0 client or a browser asking for HTML gets a 406 error.
    for accept in ["application/taxii+json;version=2.0", "text/html"] {
        let (status, headers, body) = get(&node, "/taxii2/api/", Some(admin), accept).await;
        assert_eq!(status, 406, "{accept}: {body}");
        assert_eq!(content_type(&headers), TAXII);
        assert_eq!(body["http_status"], "406");
        assert!(body["title"].is_string() && body["description"].is_string());
    }

    // No credentials, or bad ones: 401 with a Basic challenge, as an error object.
    for token in [None, Some("slc_not_a_token")] {
        let (status, headers, body) = get(&node, "/taxii2/api/collections/", token, TAXII).await;
        assert_eq!(status, 401, "{body}");
        let challenge = headers.get("www-authenticate").unwrap().to_str().unwrap();
        assert!(challenge.starts_with("Basic"), "{challenge}");
        assert_eq!(body["http_status"], "401");
    }

    // Unknown collections and objects are 404; bad parameters 400; all as error objects.
    let (status, _, body) = get(
        &node,
        "/taxii2/api/collections/nope/objects/",
        Some(admin),
        TAXII,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let id = collection_id(&node, "indicators").await;
    for (query, expected) in [
        ("limit=0", 400),
        ("added_after=yesterday", 400),
        ("next=garbage", 400),
        ("match[version]=newest", 400),
        ("match[relationship_type]=x", 400),
    ] {
        let path = format!("/taxii2/api/collections/{id}/objects/?{query}");
        let (status, headers, body) = get(&node, &path, Some(admin), TAXII).await;
        assert_eq!(status, expected, "{query}: {body}");
        assert_eq!(content_type(&headers), TAXII);
        assert!(
            body["description"].as_str().unwrap().contains('`'),
            "{body}"
        );
    }
    let path = format!(
        "/taxii2/api/collections/{id}/objects/indicator--00000000-0000-5000-8000-000000000000/"
    );
    let (status, _, body) = get(&node, &path, Some(admin), TAXII).await;
    assert_eq!(status, 404, "{body}");

    // An empty collection is an envelope with `more: false` and no objects.
    let path = format!("/taxii2/api/collections/{id}/objects/");
    let (status, headers, body) = get(&node, &path, Some(admin), TAXII).await;
    assert_eq!((status, body.clone()), (200, json!({"more": false})));
    assert!(headers.get("x-taxii-date-added-first").is_none());

    // A plan without the firehose (free: a live sample, no replay window) has no TAXII access.
    node.create_account("sampler", "free").await;
    let token = node.create_token("sampler", "read").await;
    let (status, headers, body) = get(&node, "/taxii2/", Some(&token), TAXII).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(content_type(&headers), TAXII);
    assert!(
        body["description"].as_str().unwrap().contains("firehose"),
        "{body}"
    );
}

#[tokio::test]
async fn versions_plans_and_manifests_follow_the_log() {
    let node = Node::start(NodeOptions::default()).await;
    let admin = node.admin_token.as_str();
    let at = |minutes: i64| (chrono::Utc::now() - chrono::Duration::minutes(minutes)).to_rfc3339();
    // One object in three versions (the same provider's report of the same indicator), one
    // amber and one red indicator.
    node.publish_all(&[
        json!({"indicator": "185.20.30.40", "provider": "honeypot-eu", "tags": "scanner", "reporttime": at(30)}),
        json!({"indicator": "185.20.30.40", "provider": "honeypot-eu", "tags": "scanner", "reporttime": at(20)}),
        json!({"indicator": "phish.example.net", "tags": "phishing", "tlp": "amber"}),
        json!({"indicator": "185.20.30.40", "provider": "honeypot-eu", "tags": "scanner", "reporttime": at(10)}),
        json!({"indicator": "c2.example.org", "tags": "c2", "tlp": "red"}),
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let id = collection_id(&node, "indicators").await;
    let objects = |query: &'static str, token: String| {
        let path = format!("/taxii2/api/collections/{id}/objects/{query}");
        let node = &node;
        async move { get(node, &path, Some(&token), TAXII).await }
    };

    // The last versions by default, oldest first; every version with `all`.
    let (status, headers, last) = objects("", admin.into()).await;
    assert_eq!(status, 200, "{last}");
    let names: Vec<&str> = last["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| object["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["phish.example.net", "185.20.30.40", "c2.example.org"]
    );
    assert!(headers.get("x-taxii-date-added-first").is_some());
    let (_, _, all) = objects("?match[version]=all", admin.into()).await;
    assert_eq!(all["objects"].as_array().unwrap().len(), 5, "{all}");
    let (_, _, first) = objects("?match[version]=first&match[type]=indicator", admin.into()).await;
    assert_eq!(first["objects"].as_array().unwrap().len(), 3, "{first}");
    let (_, _, none) = objects("?match[type]=relationship", admin.into()).await;
    assert_eq!(none, json!({"more": false}));

    // One object: its last version, then all three versions, newest last.
    let scanner = last["objects"][1].clone();
    let object_id = scanner["id"].as_str().unwrap();
    let path = format!("/taxii2/api/collections/{id}/objects/{object_id}/");
    let (status, _, body) = get(&node, &path, Some(admin), TAXII).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["objects"], json!([scanner]));
    let (_, _, versions) = get(&node, &format!("{path}versions/"), Some(admin), TAXII).await;
    let versions = versions["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("{versions}"))
        .clone();
    assert_eq!(versions.len(), 3, "{versions:?}");
    assert_eq!(versions[2], scanner["modified"]);
    assert!(versions[0].as_str() < versions[1].as_str());
    let path = format!(
        "/taxii2/api/collections/{id}/objects/{object_id}/?match[version]={}",
        versions[0].as_str().unwrap()
    );
    let (_, _, oldest) = get(&node, &path, Some(admin), TAXII).await;
    assert_eq!(oldest["objects"][0]["modified"], versions[0]);

    // The manifest says the same, with the version and when each was added.
    let path = format!("/taxii2/api/collections/{id}/manifest/");
    let (_, _, manifest) = get(&node, &path, Some(admin), TAXII).await;
    let records = manifest["objects"].as_array().unwrap();
    assert_eq!(records.len(), 3, "{manifest}");
    assert_eq!(records[1]["id"], scanner["id"]);
    assert_eq!(records[1]["version"], scanner["modified"]);
    assert_eq!(
        records[1]["media_type"],
        "application/stix+json;version=2.1"
    );

    // Paging by one: three pages, each with `next`, the last without.
    let mut pages = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let query = next
            .as_ref()
            .map(|next| format!("?limit=1&next={next}"))
            .unwrap_or_else(|| "?limit=1".into());
        let path = format!("/taxii2/api/collections/{id}/objects/{query}");
        let (status, _, page) = get(&node, &path, Some(admin), TAXII).await;
        assert_eq!(status, 200, "{page}");
        pages.extend(page["objects"].as_array().cloned().unwrap_or_default());
        if page["more"] != true {
            break;
        }
        next = Some(page["next"].as_str().unwrap().to_owned());
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(pages, *last["objects"].as_array().unwrap());

    // A hobby plan (TLP up to amber) does not see the red indicator, on any endpoint.
    node.create_account("hobbyist", "hobby").await;
    let hobby = node.create_token("hobbyist", "read").await;
    let (status, _, seen) = objects("", hobby.clone()).await;
    assert_eq!(status, 200, "{seen}");
    let seen: HashMap<&str, &Value> = seen["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|object| (object["name"].as_str().unwrap(), object))
        .collect();
    assert!(seen.contains_key("phish.example.net") && !seen.contains_key("c2.example.org"));
    let red = last["objects"][2]["id"].as_str().unwrap();
    let path = format!("/taxii2/api/collections/{id}/objects/{red}/");
    let (status, _, _) = get(&node, &path, Some(&hobby), TAXII).await;
    assert_eq!(status, 404);

    // Profiles are collections: the firewall one holds addresses only.
    let firewall = collection_id(&node, "firewall").await;
    let path = format!("/taxii2/api/collections/{firewall}/objects/");
    let (_, _, body) = get(&node, &path, Some(admin), TAXII).await;
    for object in body["objects"].as_array().cloned().unwrap_or_default() {
        assert!(
            object["pattern"].as_str().unwrap().contains("-addr:"),
            "{object}"
        );
    }
}

#[tokio::test]
async fn a_plan_sees_the_last_version_it_may_see_and_next_cannot_skip_history() {
    let node = Node::start(NodeOptions::default()).await;
    let admin = node.admin_token.as_str();
    // The same provider reports one address at amber, then at red.
    node.publish_all(&[
        json!({"indicator": "185.20.30.50", "provider": "honeypot-eu", "tlp": "amber", "confidence": 6}),
        json!({"indicator": "185.20.30.51", "provider": "honeypot-eu", "tlp": "green"}),
        json!({"indicator": "185.20.30.50", "provider": "honeypot-eu", "tlp": "red", "confidence": 9}),
    ])
    .await;
    // Another account publishes only red.
    node.create_account("closed-group", "enterprise").await;
    let closed_group = node.create_token("closed-group", "write").await;
    let (status, answer) = node
        .publish(
            &closed_group,
            &json!([{"indicator": "185.20.30.52", "tlp": "red"}]),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    node.create_account("hobbyist", "hobby").await;
    let hobby = node.create_token("hobbyist", "read").await;
    let id = collection_id(&node, "indicators").await;
    let objects = format!("/taxii2/api/collections/{id}/objects/");

    let (_, _, seen) = get(&node, &objects, Some(&hobby), TAXII).await;
    let seen = seen["objects"].as_array().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let amber = seen
        .iter()
        .find(|object| object["name"] == "185.20.30.50")
        .expect("the amber version is the last one a hobby plan may see");
    assert_eq!(amber["confidence"], 60);
    let by_id = format!("{objects}{}/", amber["id"].as_str().unwrap());
    let (status, _, body) = get(&node, &by_id, Some(&hobby), TAXII).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["objects"][0]["confidence"], 60);
    let (_, _, body) = get(&node, &by_id, Some(admin), TAXII).await;
    assert_eq!(
        body["objects"][0]["confidence"], 90,
        "the red one for a plan that sees red"
    );

    // What the indicators refer to can be looked up: the provider's identity, while it reported
    // something the plan may see, and the TLP marking definitions.
    let author = format!("{objects}{}/", amber["created_by_ref"].as_str().unwrap());
    let (status, headers, body) = get(&node, &author, Some(&hobby), TAXII).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type(&headers), TAXII);
    assert_eq!(body["objects"][0]["type"], "identity");
    assert_eq!(
        body["objects"][0]["name"], "admin",
        "POST names the account as provider"
    );
    let marking = amber["object_marking_refs"][0].as_str().unwrap();
    let (status, _, body) = get(&node, &format!("{objects}{marking}/"), Some(&hobby), TAXII).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["objects"][0]["name"], "TLP:AMBER");
    let (_, _, all) = get(
        &node,
        &format!("{objects}?match[version]=all"),
        Some(admin),
        TAXII,
    )
    .await;
    let closed = all["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|object| object["name"] == "185.20.30.52")
        .unwrap();
    let closed = format!("{objects}{}/", closed["created_by_ref"].as_str().unwrap());
    let (status, _, _) = get(&node, &closed, Some(&hobby), TAXII).await;
    assert_eq!(
        status, 404,
        "a provider that reported only red is not there for a hobby plan"
    );
    let (status, _, _) = get(&node, &closed, Some(admin), TAXII).await;
    assert_eq!(status, 200);
    let unknown = format!("{objects}identity--00000000-0000-5000-8000-000000000000/");
    let (status, _, _) = get(&node, &unknown, Some(admin), TAXII).await;
    assert_eq!(status, 404);

    // A `next` from before the plan's replay window would skip what it cannot see: refused.
    let (_, _, page) = get(&node, &format!("{objects}?limit=1"), Some(&hobby), TAXII).await;
    let next = page["next"]
        .as_str()
        .expect("a first page of one has a next");
    let epoch = next.split('.').next().unwrap();
    let (status, _, body) = get(
        &node,
        &format!("{objects}?next={epoch}.1000-0"),
        Some(&hobby),
        TAXII,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .contains("replay window"),
        "{body}"
    );

    // Filters are bounded: a hundred ids at most.
    let ids = vec!["indicator--00000000-0000-5000-8000-000000000000"; 101].join(",");
    let (status, _, body) = get(
        &node,
        &format!("{objects}?match[id]={ids}"),
        Some(admin),
        TAXII,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
