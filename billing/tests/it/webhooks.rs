//! Webhook endpoints' records: the per-account limit, one lease holder per endpoint, the batch
//! in flight surviving a change of holder, the cursor moving only for the holder, and the
//! delivery log bounded per endpoint.

use billing::{
    DeliveryOutcome, DeliveryRecord, Lease, NewWebhook, PendingBatch, StoreError, DELIVERY_LOG_ROWS,
};

use crate::{count_rows, TestDb};

testkit::on_both_backends!(
    crate::TestDb;
    endpoints_are_limited_per_account_and_private_to_it,
    one_node_holds_an_endpoint_until_its_lease_runs_out_or_is_released,
    the_batch_in_flight_and_the_cursor_are_the_holders_to_move,
    the_delivery_log_keeps_the_newest_rows_per_endpoint,
    registrations_at_once_stay_within_the_limit,
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

/// Registers `url` for `acme` (on a plan with room for ten endpoints).
async fn register(db: &TestDb, url: &str) -> billing::Webhook {
    db.store
        .create_webhook("acme", &new(url), 10)
        .await
        .unwrap()
        .0
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
    let webhook = register(db, "https://a.example/").await;
    let other = db.reopen().await;
    let one = db.store.claim_webhooks("one", in_a_minute()).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (one[0].id.as_str(), one[0].node.as_str()),
        (webhook.id.as_str(), "one")
    );
    assert!(other
        .claim_webhooks("two", in_a_minute())
        .await
        .unwrap()
        .is_empty());
    let job = db.store.webhook_job(&one[0]).await.unwrap().unwrap();
    assert_eq!(job.plan, "pro");
    assert!(job.secret.starts_with("whsec_"));
    assert!(db.store.holds_webhook(&one[0]).await.unwrap());
    // Renewal keeps the generation; a lapsed lease goes to whoever claims next, with a new one.
    let renewed = db.store.claim_webhooks("one", 0).await.unwrap();
    assert_eq!(renewed, one);
    assert!(!db.store.holds_webhook(&one[0]).await.unwrap(), "lapsed");
    let two = other.claim_webhooks("two", in_a_minute()).await.unwrap();
    assert_eq!(two.len(), 1);
    assert!(two[0].generation > one[0].generation);
    assert!(db
        .store
        .claim_webhooks("one", in_a_minute())
        .await
        .unwrap()
        .is_empty());
    assert!(db.store.webhook_job(&one[0]).await.unwrap().is_none());
    let fake = Lease {
        node: "two".into(),
        generation: one[0].generation,
        ..two[0].clone()
    };
    assert!(
        db.store.webhook_job(&fake).await.unwrap().is_none(),
        "an old generation"
    );
    other.release_webhooks("two").await.unwrap();
    let again = db.store.claim_webhooks("one", in_a_minute()).await.unwrap();
    assert!(again[0].generation > two[0].generation);
    other.close().await;
}

async fn the_batch_in_flight_and_the_cursor_are_the_holders_to_move(db: &TestDb) {
    db.store.create_account("acme", "pro").await.unwrap();
    let webhook = register(db, "https://a.example/").await;
    let id = webhook.id.as_str();
    let one = db
        .store
        .claim_webhooks("one", in_a_minute())
        .await
        .unwrap()
        .remove(0);
    let batch = PendingBatch {
        key: "k1".into(),
        through: "e.3-0".into(),
        count: 3,
    };
    let stranger = Lease {
        node: "two".into(),
        ..one.clone()
    };
    assert!(!db
        .store
        .begin_webhook_batch(&stranger, &batch)
        .await
        .unwrap());
    assert!(db.store.begin_webhook_batch(&one, &batch).await.unwrap());
    assert!(
        !db.store.begin_webhook_batch(&one, &batch).await.unwrap(),
        "one in flight at a time"
    );
    let failed = record("k1", 1, DeliveryOutcome::Failed);
    assert!(db.store.fail_webhook_attempt(&one, &failed).await.unwrap());
    assert!(
        !db.store
            .fail_webhook_attempt(&one, &record("k9", 1, DeliveryOutcome::Failed))
            .await
            .unwrap(),
        "not the batch in flight"
    );
    // The next holder finds the same batch, its failed tries and the error; the old holder
    // can no longer move anything, even once its node holds the endpoint again.
    db.store.release_webhooks("one").await.unwrap();
    let two = db
        .store
        .claim_webhooks("two", in_a_minute())
        .await
        .unwrap()
        .remove(0);
    let job = db.store.webhook_job(&two).await.unwrap().unwrap();
    assert_eq!(job.pending, Some(batch.clone()));
    assert_eq!(job.webhook.failing_attempts, 1);
    assert_eq!(job.webhook.last_error.as_deref(), Some("HTTP 500"));
    assert!(!db
        .store
        .advance_webhook(&one, "e.3-0", Some(&failed))
        .await
        .unwrap());
    assert!(
        !db.store.advance_webhook(&two, "e.3-0", None).await.unwrap(),
        "a batch is in flight"
    );
    let mut delivered = record("k1", 2, DeliveryOutcome::Delivered);
    delivered.http_status = Some(200);
    delivered.error = None;
    assert!(db
        .store
        .advance_webhook(&two, "e.3-0", Some(&delivered))
        .await
        .unwrap());
    let job = db.store.webhook_job(&two).await.unwrap().unwrap();
    assert_eq!(job.pending, None);
    assert_eq!(job.webhook.cursor.as_deref(), Some("e.3-0"));
    assert_eq!(job.webhook.failing_attempts, 0);
    assert!(job.webhook.last_error.is_none() && job.webhook.last_success_at.is_some());
    // Nothing in flight: positions with nothing to deliver move the cursor on.
    assert!(db.store.advance_webhook(&two, "e.9-0", None).await.unwrap());
    // A batch whose contents changed is forgotten without moving the cursor.
    let next = PendingBatch {
        key: "k2".into(),
        through: "e.12-0".into(),
        count: 1,
    };
    assert!(db.store.begin_webhook_batch(&two, &next).await.unwrap());
    assert!(!db.store.clear_webhook_batch(&two, "k1").await.unwrap());
    assert!(db.store.clear_webhook_batch(&two, "k2").await.unwrap());
    let job = db.store.webhook_job(&two).await.unwrap().unwrap();
    assert_eq!(
        (job.pending, job.webhook.cursor.as_deref()),
        (None, Some("e.9-0"))
    );

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
    let busy = register(db, "https://a.example/").await;
    let quiet = register(db, "https://b.example/").await;
    let leases = db.store.claim_webhooks("one", in_a_minute()).await.unwrap();
    let lease = |id: &str| leases.iter().find(|lease| lease.id == id).unwrap().clone();
    let (busy_lease, quiet_lease) = (lease(&busy.id), lease(&quiet.id));
    // Gaps need no batch in flight; the two endpoints' rows interleave.
    let gap = |key: String| DeliveryRecord {
        batch_key: String::new(),
        error: Some(key),
        ..record("", 0, DeliveryOutcome::Gap)
    };
    let extra = 5;
    for n in 0..DELIVERY_LOG_ROWS + extra {
        let text = format!("k{n}");
        assert!(db
            .store
            .advance_webhook(&busy_lease, "e.1-0", Some(&gap(text.clone())))
            .await
            .unwrap());
        if n % 2 == 0 {
            assert!(db
                .store
                .advance_webhook(&quiet_lease, "e.1-0", Some(&gap(text)))
                .await
                .unwrap());
        }
    }
    let rows = db
        .store
        .webhook_deliveries(&busy.id, None, 5000)
        .await
        .unwrap();
    assert_eq!(rows.len() as i64, DELIVERY_LOG_ROWS);
    let text = |row: &billing::Delivery| row.record.error.clone().unwrap();
    assert_eq!(
        text(&rows[0]),
        format!("k{}", DELIVERY_LOG_ROWS + extra - 1)
    );
    assert_eq!(text(rows.last().unwrap()), format!("k{extra}"));
    let quiet_rows = db
        .store
        .webhook_deliveries(&quiet.id, None, 5000)
        .await
        .unwrap();
    assert_eq!(quiet_rows.len() as i64, (DELIVERY_LOG_ROWS + extra + 1) / 2);
}

async fn registrations_at_once_stay_within_the_limit(db: &TestDb) {
    db.store.create_account("acme", "hobby").await.unwrap();
    let stores = [
        db.reopen().await,
        db.reopen().await,
        db.reopen().await,
        db.reopen().await,
    ];
    let mut attempts = tokio::task::JoinSet::new();
    for store in &stores {
        for n in 0..3 {
            let store = store.clone();
            attempts.spawn(async move {
                store
                    .create_webhook("acme", &new(&format!("https://{n}.example/")), 2)
                    .await
            });
        }
    }
    let results = attempts.join_all().await;
    let created = results.iter().filter(|result| result.is_ok()).count();
    for result in &results {
        assert!(
            matches!(
                result,
                Ok(_) | Err(StoreError::Limit(_)) | Err(StoreError::Busy)
            ),
            "{result:?}"
        );
    }
    assert_eq!(created, 2, "{results:?}");
    assert_eq!(db.store.webhooks("acme").await.unwrap().len(), 2);
    for store in stores {
        store.close().await;
    }
}
