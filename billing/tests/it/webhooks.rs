//! Webhook endpoints' records: the per-account limit, one lease holder per endpoint, the batch
//! in flight surviving a change of holder, the cursor moving only for the holder, and the
//! delivery log bounded per endpoint.

use billing::{DeliveryOutcome, DeliveryRecord, NewWebhook, StoreError, DELIVERY_LOG_ROWS};

use crate::{count_rows, TestDb};

testkit::on_both_backends!(
    crate::TestDb;
    endpoints_are_limited_per_account_and_private_to_it,
    one_node_holds_an_endpoint_until_its_lease_runs_out_or_is_released,
    the_batch_in_flight_and_the_cursor_are_the_holders_to_move,
    the_delivery_log_keeps_the_newest_rows_per_endpoint,
);

fn new(url: &str) -> NewWebhook {
    NewWebhook {
        url: url.into(),
        filter: "correlated=true".into(),
        format: "native".into(),
    }
}

fn record(key: &str, attempt: u32, outcome: DeliveryOutcome) -> DeliveryRecord {
    DeliveryRecord {
        batch_key: key.into(),
        attempt,
        outcome,
        http_status: Some(500),
        error: Some("HTTP 500".into()),
        indicators: 3,
        first_cursor: Some("e.1-0".into()),
        last_cursor: Some("e.3-0".into()),
    }
}

fn in_a_minute() -> i64 {
    chrono::Utc::now().timestamp() + 60
}

async fn endpoints_are_limited_per_account_and_private_to_it(db: &TestDb) {
    db.store.create_account("acme", "hobby").await.unwrap();
    db.store.create_account("other", "pro").await.unwrap();
    let (first, secret) = db
        .store
        .create_webhook("acme", &new("https://a.example/"), 2)
        .await
        .unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() > 30);
    assert_eq!(first.account, "acme");
    assert_eq!(first.filter, "correlated=true");
    assert!(first.cursor.is_none() && first.last_error.is_none());
    db.store
        .create_webhook("acme", &new("https://b.example/"), 2)
        .await
        .unwrap();
    let refused = db
        .store
        .create_webhook("acme", &new("https://c.example/"), 2)
        .await;
    assert!(matches!(refused, Err(StoreError::Limit(_))), "{refused:?}");
    assert_eq!(db.store.webhooks("acme").await.unwrap().len(), 2);
    assert!(db
        .store
        .webhook("other", &first.id)
        .await
        .unwrap()
        .is_none());
    assert!(!db.store.delete_webhook("other", &first.id).await.unwrap());
    assert!(db.store.delete_webhook("acme", &first.id).await.unwrap());
    assert!(db.store.webhook("acme", &first.id).await.unwrap().is_none());
    let unknown = db.store.webhooks("nobody").await;
    assert!(
        matches!(unknown, Err(StoreError::UnknownAccount(_))),
        "{unknown:?}"
    );
}

async fn one_node_holds_an_endpoint_until_its_lease_runs_out_or_is_released(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    let (webhook, _) = db
        .store
        .create_webhook("acme", &new("https://a.example/"), 10)
        .await
        .unwrap();
    let other = db.reopen().await;
    assert_eq!(
        db.store.claim_webhooks("one", in_a_minute()).await.unwrap(),
        [webhook.id.as_str()]
    );
    assert!(other
        .claim_webhooks("two", in_a_minute())
        .await
        .unwrap()
        .is_empty());
    assert!(other
        .webhook_job(&webhook.id, "two")
        .await
        .unwrap()
        .is_none());
    let job = db
        .store
        .webhook_job(&webhook.id, "one")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.plan, "pro");
    assert!(job.secret.starts_with("whsec_"));
    // Renewal keeps it; a lapsed lease goes to whoever claims next.
    assert_eq!(db.store.claim_webhooks("one", 0).await.unwrap().len(), 1);
    assert_eq!(
        other.claim_webhooks("two", in_a_minute()).await.unwrap(),
        [webhook.id.as_str()]
    );
    assert!(db
        .store
        .claim_webhooks("one", in_a_minute())
        .await
        .unwrap()
        .is_empty());
    other.release_webhooks("two").await.unwrap();
    assert_eq!(
        db.store
            .claim_webhooks("one", in_a_minute())
            .await
            .unwrap()
            .len(),
        1
    );
    other.close().await;
}

async fn the_batch_in_flight_and_the_cursor_are_the_holders_to_move(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    let (webhook, _) = db
        .store
        .create_webhook("acme", &new("https://a.example/"), 10)
        .await
        .unwrap();
    let id = webhook.id.as_str();
    db.store.claim_webhooks("one", in_a_minute()).await.unwrap();
    assert!(!db
        .store
        .begin_webhook_batch(id, "two", "k1", "e.3-0")
        .await
        .unwrap());
    assert!(db
        .store
        .begin_webhook_batch(id, "one", "k1", "e.3-0")
        .await
        .unwrap());
    assert!(db
        .store
        .fail_webhook_attempt(id, "one", &record("k1", 1, DeliveryOutcome::Failed))
        .await
        .unwrap());
    // The next holder finds the same batch, its failed tries and the error.
    db.store.release_webhooks("one").await.unwrap();
    db.store.claim_webhooks("two", in_a_minute()).await.unwrap();
    let job = db.store.webhook_job(id, "two").await.unwrap().unwrap();
    assert_eq!(job.pending, Some(("k1".to_owned(), "e.3-0".to_owned())));
    assert_eq!(job.webhook.failing_attempts, 1);
    assert_eq!(job.webhook.last_error.as_deref(), Some("HTTP 500"));
    assert!(!db
        .store
        .advance_webhook(id, "one", "e.3-0", None)
        .await
        .unwrap());
    let mut delivered = record("k1", 2, DeliveryOutcome::Delivered);
    delivered.http_status = Some(200);
    delivered.error = None;
    assert!(db
        .store
        .advance_webhook(id, "two", "e.3-0", Some(&delivered))
        .await
        .unwrap());
    let job = db.store.webhook_job(id, "two").await.unwrap().unwrap();
    assert_eq!(job.pending, None);
    assert_eq!(job.webhook.cursor.as_deref(), Some("e.3-0"));
    assert_eq!(job.webhook.failing_attempts, 0);
    assert!(job.webhook.last_error.is_none() && job.webhook.last_success_at.is_some());
    let log = db.store.webhook_deliveries(id, None, 10).await.unwrap();
    let outcomes: Vec<_> = log.iter().map(|d| d.record.outcome).collect();
    assert_eq!(
        outcomes,
        [DeliveryOutcome::Delivered, DeliveryOutcome::Failed]
    );
    assert_eq!(log[0].record, delivered);
    let failed = db
        .store
        .webhook_deliveries(id, Some(DeliveryOutcome::Failed), 10)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    // Deleting the endpoint takes its log along.
    assert!(db.store.delete_webhook("acme", id).await.unwrap());
    assert_eq!(count_rows(&db.store, "webhook_deliveries").await, 0);
}

async fn the_delivery_log_keeps_the_newest_rows_per_endpoint(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    let (webhook, _) = db
        .store
        .create_webhook("acme", &new("https://a.example/"), 10)
        .await
        .unwrap();
    let (quiet, _) = db
        .store
        .create_webhook("acme", &new("https://b.example/"), 10)
        .await
        .unwrap();
    db.store
        .record_webhook_gap(&quiet.id, &record("", 0, DeliveryOutcome::Gap))
        .await
        .unwrap();
    let extra = 5;
    for n in 0..DELIVERY_LOG_ROWS + extra {
        let key = format!("k{n}");
        db.store
            .record_webhook_gap(&webhook.id, &record(&key, 0, DeliveryOutcome::Gap))
            .await
            .unwrap();
    }
    let rows = db
        .store
        .webhook_deliveries(&webhook.id, None, 5000)
        .await
        .unwrap();
    assert_eq!(rows.len() as i64, DELIVERY_LOG_ROWS);
    assert_eq!(
        rows[0].record.batch_key,
        format!("k{}", DELIVERY_LOG_ROWS + extra - 1)
    );
    assert_eq!(rows.last().unwrap().record.batch_key, format!("k{extra}"));
    assert_eq!(
        db.store
            .webhook_deliveries(&quiet.id, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}
