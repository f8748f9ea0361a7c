//! Usage metering: nodes' deltas add up per account and day; peaks take the maximum.

use billing::{StoreError, UsageDay, UsageDelta, UsageTotal};
use chrono::NaiveDate;

use crate::{count_rows, TestDb};

testkit::on_both_backends!(
    crate::TestDb;
    deltas_add_up_and_peaks_take_the_maximum,
    usage_lists_the_days_in_range_oldest_first,
    a_batch_with_an_unknown_account_records_nothing,
    concurrent_reports_from_several_nodes_add_up,
    totals_cover_every_account_over_the_period,
);

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn delta(delivered: u64, dropped: u64, bytes: u64, opened: u64, peak: u64) -> UsageDelta {
    UsageDelta {
        delivered,
        dropped,
        bytes,
        connections_opened: opened,
        peak_connections: peak,
    }
}

fn usage_day(
    text: &str,
    delivered: u64,
    dropped: u64,
    bytes: u64,
    opened: u64,
    peak: u64,
) -> UsageDay {
    UsageDay {
        day: text.into(),
        delivered,
        dropped,
        bytes,
        connections: opened,
        peak_connections: peak,
    }
}

async fn deltas_add_up_and_peaks_take_the_maximum(db: &TestDb) {
    let acme = db.store.create_account("acme", "pro").await.unwrap();
    let today = day("2024-03-01");
    db.store
        .record_usage(&[(acme.id, today, delta(10, 1, 1000, 2, 2))])
        .await
        .unwrap();
    // Another node's report for the same day, with a higher peak, then a lower one.
    db.store
        .record_usage(&[(acme.id, today, delta(5, 0, 500, 1, 3))])
        .await
        .unwrap();
    db.store
        .record_usage(&[(acme.id, today, delta(0, 4, 0, 0, 1))])
        .await
        .unwrap();
    assert_eq!(
        db.store.usage("acme", today, today).await.unwrap(),
        vec![usage_day("2024-03-01", 15, 5, 1500, 3, 3)]
    );
    // Nothing to report is not an error and touches nothing.
    db.store.record_usage(&[]).await.unwrap();
    assert_eq!(count_rows(&db.store, "usage_daily").await, 1);
    // Large counters survive the round trip.
    let big = i64::MAX as u64 / 2;
    db.store
        .record_usage(&[(acme.id, day("2024-03-02"), delta(big, 0, big, 0, 0))])
        .await
        .unwrap();
    assert_eq!(
        db.store
            .usage("acme", day("2024-03-02"), day("2024-03-02"))
            .await
            .unwrap()[0]
            .bytes,
        big
    );
    // A delta beyond the database's range is refused, not wrapped.
    let error = db
        .store
        .record_usage(&[(acme.id, today, delta(u64::MAX, 0, 0, 0, 0))])
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("out of range"), "{error:#}");
}

async fn usage_lists_the_days_in_range_oldest_first(db: &TestDb) {
    let acme = db.store.create_account("acme", "pro").await.unwrap();
    let other = db.store.create_account("other", "free").await.unwrap();
    // One batch, several accounts and days, out of order.
    db.store
        .record_usage(&[
            (acme.id, day("2024-03-03"), delta(3, 0, 30, 1, 1)),
            (acme.id, day("2024-02-29"), delta(1, 0, 10, 1, 1)),
            (other.id, day("2024-03-01"), delta(9, 9, 99, 9, 9)),
            (acme.id, day("2024-03-01"), delta(2, 0, 20, 1, 1)),
            (acme.id, day("2025-01-01"), delta(4, 0, 40, 1, 1)),
        ])
        .await
        .unwrap();
    assert_eq!(
        db.store
            .usage("acme", day("2024-02-29"), day("2024-03-03"))
            .await
            .unwrap(),
        vec![
            usage_day("2024-02-29", 1, 0, 10, 1, 1),
            usage_day("2024-03-01", 2, 0, 20, 1, 1),
            usage_day("2024-03-03", 3, 0, 30, 1, 1),
        ]
    );
    // Bounds are inclusive; days without usage are simply absent.
    let single = db
        .store
        .usage("acme", day("2024-03-01"), day("2024-03-02"))
        .await
        .unwrap();
    assert_eq!(single, vec![usage_day("2024-03-01", 2, 0, 20, 1, 1)]);
    assert_eq!(
        db.store
            .usage("acme", day("2024-03-04"), day("2024-12-31"))
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        db.store
            .usage("other", day("2024-01-01"), day("2024-12-31"))
            .await
            .unwrap(),
        vec![usage_day("2024-03-01", 9, 9, 99, 9, 9)]
    );
    let error = db
        .store
        .usage("ghost", day("2024-01-01"), day("2024-12-31"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::UnknownAccount(_)), "{error:?}");
}

async fn a_batch_with_an_unknown_account_records_nothing(db: &TestDb) {
    let acme = db.store.create_account("acme", "pro").await.unwrap();
    db.store
        .record_usage(&[
            (acme.id, day("2024-03-01"), delta(1, 0, 10, 1, 1)),
            (acme.id + 1000, day("2024-03-01"), delta(1, 0, 10, 1, 1)),
        ])
        .await
        .unwrap_err();
    assert_eq!(count_rows(&db.store, "usage_daily").await, 0);
}

async fn concurrent_reports_from_several_nodes_add_up(db: &TestDb) {
    let acme = db.store.create_account("acme", "pro").await.unwrap();
    let today = day("2024-03-01");
    let nodes = [db.reopen().await, db.reopen().await, db.store.clone()];
    let reports: Vec<_> = nodes
        .iter()
        .enumerate()
        .flat_map(|(node, store)| {
            (0..10).map(move |_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let peak = node as u64 + 1;
                    store
                        .record_usage(&[(acme.id, today, delta(1, 2, 100, 1, peak))])
                        .await
                        .unwrap();
                })
            })
        })
        .collect();
    for report in reports {
        report.await.unwrap();
    }
    assert_eq!(
        db.store.usage("acme", today, today).await.unwrap(),
        vec![usage_day("2024-03-01", 30, 60, 3000, 30, 3)]
    );
    for node in &nodes[..2] {
        node.close().await;
    }
}

async fn totals_cover_every_account_over_the_period(db: &TestDb) {
    let acme = db.store.create_account("acme", "pro").await.unwrap();
    db.store.create_account("idle", "hobby").await.unwrap();
    db.store
        .record_usage(&[
            (acme.id, day("2024-02-29"), delta(1_000, 0, 1, 1, 9)),
            (acme.id, day("2024-03-01"), delta(10, 1, 1_000, 2, 2)),
            (acme.id, day("2024-03-31"), delta(5, 0, 500, 1, 3)),
            (acme.id, day("2024-04-01"), delta(7, 7, 7, 7, 7)),
        ])
        .await
        .unwrap();
    let totals = db
        .store
        .usage_totals(day("2024-03-01"), day("2024-03-31"))
        .await
        .unwrap();
    let names: Vec<&str> = totals.iter().map(|total| total.account.as_str()).collect();
    assert!(
        names.contains(&"acme") && names.contains(&"idle"),
        "{names:?}"
    );
    let acme = totals.iter().find(|total| total.account == "acme").unwrap();
    assert_eq!(
        *acme,
        UsageTotal {
            account: "acme".into(),
            plan: "pro".into(),
            price_cents: Some(5_000),
            days: 2,
            delivered: 15,
            dropped: 1,
            bytes: 1_500,
            connections: 3,
            peak_connections: 3,
        }
    );
    let idle = totals.iter().find(|total| total.account == "idle").unwrap();
    assert_eq!(
        (idle.plan.as_str(), idle.days, idle.delivered),
        ("hobby", 0, 0)
    );
    assert_eq!(idle.price_cents, Some(2_500));
}
