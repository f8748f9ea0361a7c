//! The change log: every plan change, plan edit and revocation leaves exactly one entry, and a
//! poller following `changes_after` sees each entry once, in order, even while writers race.

use std::collections::BTreeSet;
use std::time::Duration;

use billing::{Change, ChangeKind, Scope, StoreError};
use domain::Tlp;
use sqlx::Row;

use crate::{count_rows, default_plan, TestDb};

testkit::on_both_backends!(
    crate::TestDb;
    an_empty_log_starts_at_zero,
    set_plan_records_an_account_plan_change,
    revocation_records_a_token_revoked_change,
    update_plan_edits_limits_and_records_plan_edited,
    update_plan_refuses_unknown_plans_and_invalid_limits,
    account_changes_carry_the_plan_current_at_read_time,
    changes_after_pages_oldest_first,
    old_changes_are_pruned_and_ids_are_never_reused,
    unknown_kinds_are_skipped,
    another_process_sees_changes,
    a_poller_sees_every_change_once_while_writers_race,
);

async fn an_empty_log_starts_at_zero(db: &TestDb) {
    assert_eq!(db.store.latest_change_id().await.unwrap(), 0);
    assert_eq!(db.store.changes_after(0, 100).await.unwrap(), vec![]);
    // Creating accounts and tokens is not something live connections follow.
    db.store.create_account("acme", "free").await.unwrap();
    db.store
        .create_token("acme", Scope::Read, None)
        .await
        .unwrap();
    assert_eq!(db.store.latest_change_id().await.unwrap(), 0);
}

async fn set_plan_records_an_account_plan_change(db: &TestDb) {
    let acme = db.store.create_account("acme", "free").await.unwrap();
    db.store.set_plan("acme", "pro").await.unwrap();
    let latest = db.store.latest_change_id().await.unwrap();
    assert!(latest > 0);
    assert_eq!(
        db.store.changes_after(0, 100).await.unwrap(),
        vec![Change {
            id: latest,
            kind: ChangeKind::AccountPlan {
                account_id: acme.id,
                plan: default_plan("pro"),
            },
        }]
    );

    // Moving to the plan the account is on changes nothing and records nothing.
    let same = db.store.set_plan("acme", "pro").await.unwrap();
    assert_eq!(same.plan, "pro");
    // Refused changes record nothing either.
    db.store.set_plan("acme", "platinum").await.unwrap_err();
    let error = db.store.set_plan("ghost", "hobby").await.unwrap_err();
    assert!(matches!(error, StoreError::UnknownAccount(_)), "{error:?}");
    assert_eq!(db.store.latest_change_id().await.unwrap(), latest);
    assert_eq!(count_rows(&db.store, "changes").await, 1);
}

async fn revocation_records_a_token_revoked_change(db: &TestDb) {
    let acme = db.store.create_account("acme", "pro").await.unwrap();
    let (record, _) = db
        .store
        .create_token("acme", Scope::Read, None)
        .await
        .unwrap();
    assert!(db.store.revoke_token(&record.id).await.unwrap());
    let changes = db.store.changes_after(0, 100).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].kind,
        ChangeKind::TokenRevoked {
            account_id: acme.id,
            token_id: record.id.clone(),
        }
    );
    // A second revocation, or an unknown id, records nothing.
    assert!(!db.store.revoke_token(&record.id).await.unwrap());
    assert!(!db.store.revoke_token("tok_doesnotexist").await.unwrap());
    assert_eq!(count_rows(&db.store, "changes").await, 1);
}

async fn update_plan_edits_limits_and_records_plan_edited(db: &TestDb) {
    db.store.create_account("acme", "hobby").await.unwrap();
    let (_, token) = db
        .store
        .create_token("acme", Scope::Read, None)
        .await
        .unwrap();
    let mut edited = default_plan("hobby");
    edited.price_cents = Some(2900);
    edited.limits.max_connections = 3;
    edited.limits.rate_per_second = Some(150);
    edited.limits.burst = None;
    edited.limits.replay_window = Duration::from_secs(7200);
    edited.limits.max_tlp = Tlp::Red;
    edited.limits.correlated = false;
    edited.limits.firehose = false;
    edited.limits.sample_per_second = Some(5);
    db.store.update_plan(&edited).await.unwrap();

    assert_eq!(db.store.plan("hobby").await.unwrap(), Some(edited.clone()));
    // Existing tokens carry the edited limits at once.
    let principal = db.store.authenticate(token.expose()).await.unwrap();
    assert_eq!(principal.plan, edited);
    let changes = db.store.changes_after(0, 100).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].kind,
        ChangeKind::PlanEdited {
            plan: edited.clone()
        }
    );

    // Unlimited (NULL) values and a contract price round-trip too.
    let mut unlimited = edited.clone();
    unlimited.price_cents = None;
    unlimited.limits.rate_per_second = None;
    unlimited.limits.sample_per_second = None;
    unlimited.limits.max_connections = u32::MAX;
    db.store.update_plan(&unlimited).await.unwrap();
    assert_eq!(db.store.plan("hobby").await.unwrap(), Some(unlimited));
    assert_eq!(count_rows(&db.store, "changes").await, 2);
    // The other plans are untouched.
    assert_eq!(
        db.store.plan("pro").await.unwrap(),
        Some(default_plan("pro"))
    );
}

async fn update_plan_refuses_unknown_plans_and_invalid_limits(db: &TestDb) {
    let mut unknown = default_plan("pro");
    unknown.name = "platinum".into();
    let error = db.store.update_plan(&unknown).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::UnknownPlan(name) if name == "platinum"),
        "{error:?}"
    );
    assert_eq!(db.store.plan("platinum").await.unwrap(), None);

    let mut negative = default_plan("pro");
    negative.price_cents = Some(-1);
    let error = db.store.update_plan(&negative).await.unwrap_err();
    assert!(matches!(error, StoreError::InvalidPlan(_)), "{error:?}");
    assert!(error.to_string().contains("price_cents"), "{error}");

    let mut far = default_plan("pro");
    far.limits.replay_window = Duration::from_secs(u64::MAX);
    let error = db.store.update_plan(&far).await.unwrap_err();
    assert!(matches!(error, StoreError::InvalidPlan(_)), "{error:?}");

    assert_eq!(
        db.store.plan("pro").await.unwrap(),
        Some(default_plan("pro"))
    );
    assert_eq!(count_rows(&db.store, "changes").await, 0);
}

async fn account_changes_carry_the_plan_current_at_read_time(db: &TestDb) {
    let acme = db.store.create_account("acme", "free").await.unwrap();
    db.store.set_plan("acme", "pro").await.unwrap();
    db.store.set_plan("acme", "hobby").await.unwrap();
    let mut hobby = default_plan("hobby");
    hobby.limits.rate_per_second = Some(123);
    db.store.update_plan(&hobby).await.unwrap();
    // A node catching up applies the account's current plan at each step, ending right.
    let kinds: Vec<ChangeKind> = db
        .store
        .changes_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|change| change.kind)
        .collect();
    let current = ChangeKind::AccountPlan {
        account_id: acme.id,
        plan: hobby.clone(),
    };
    assert_eq!(
        kinds,
        vec![
            current.clone(),
            current,
            ChangeKind::PlanEdited { plan: hobby }
        ]
    );
}

async fn changes_after_pages_oldest_first(db: &TestDb) {
    db.store.create_account("acme", "free").await.unwrap();
    for plan in ["hobby", "pro", "free", "hobby", "pro"] {
        db.store.set_plan("acme", plan).await.unwrap();
    }
    let all = db.store.changes_after(0, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert_eq!(db.store.latest_change_id().await.unwrap(), all[4].id);

    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = db.store.changes_after(after, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().unwrap().id;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert_eq!(
        db.store.changes_after(all[2].id, 100).await.unwrap(),
        all[3..]
    );
    assert_eq!(
        db.store.changes_after(all[4].id, 100).await.unwrap(),
        vec![]
    );
    assert_eq!(db.store.changes_after(0, 0).await.unwrap(), vec![]);
}

async fn old_changes_are_pruned_and_ids_are_never_reused(db: &TestDb) {
    db.store.create_account("acme", "free").await.unwrap();
    db.store.set_plan("acme", "pro").await.unwrap();
    let first = db.store.latest_change_id().await.unwrap();
    // Age every row past the retention: the next change prunes them all, including the
    // newest, yet the next id still grows (SQLite's AUTOINCREMENT, PostgreSQL's identity).
    let two_days_ago = chrono::Utc::now().timestamp() - 2 * 86_400;
    sqlx::query("UPDATE changes SET created_at = $1")
        .bind(two_days_ago)
        .execute(db.store.pool())
        .await
        .unwrap();
    db.store.set_plan("acme", "hobby").await.unwrap();
    let changes = db.store.changes_after(0, 100).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert!(changes[0].id > first);

    // Rows within the retention stay.
    let hours_ago = chrono::Utc::now().timestamp() - 3600;
    sqlx::query("UPDATE changes SET created_at = $1")
        .bind(hours_ago)
        .execute(db.store.pool())
        .await
        .unwrap();
    db.store.set_plan("acme", "pro").await.unwrap();
    assert_eq!(count_rows(&db.store, "changes").await, 2);
    assert_eq!(billing::CHANGE_RETENTION, Duration::from_secs(86_400));
}

async fn unknown_kinds_are_skipped(db: &TestDb) {
    let acme = db.store.create_account("acme", "free").await.unwrap();
    // What a newer node might write during a rolling upgrade.
    sqlx::query(
        "INSERT INTO changes (kind, account_id, created_at) VALUES ('account_disabled', $1, $2)",
    )
    .bind(acme.id)
    .bind(chrono::Utc::now().timestamp())
    .execute(db.store.pool())
    .await
    .unwrap();
    db.store.set_plan("acme", "pro").await.unwrap();
    let changes = db.store.changes_after(0, 100).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert!(matches!(changes[0].kind, ChangeKind::AccountPlan { .. }));
    // The skipped row still counts as a position: the newest id is past it.
    assert_eq!(db.store.latest_change_id().await.unwrap(), changes[0].id);
}

async fn another_process_sees_changes(db: &TestDb) {
    let acme = db.store.create_account("acme", "free").await.unwrap();
    let start = db.store.latest_change_id().await.unwrap();
    let other = db.reopen().await;
    other.set_plan("acme", "enterprise").await.unwrap();
    other.close().await;
    let changes = db.store.changes_after(start, 100).await.unwrap();
    assert_eq!(
        changes
            .into_iter()
            .map(|change| change.kind)
            .collect::<Vec<_>>(),
        vec![ChangeKind::AccountPlan {
            account_id: acme.id,
            plan: default_plan("enterprise"),
        }]
    );
}

/// The property the gateway relies on: ids become visible in id order, so a poller that only
/// remembers the last id it saw misses nothing. Many writers on their own connections commit
/// concurrently while a poller follows; at the end it must have seen every row, once.
async fn a_poller_sees_every_change_once_while_writers_race(db: &TestDb) {
    const WRITERS: usize = 8;
    const CHANGES_PER_WRITER: usize = 6;
    for writer in 0..WRITERS {
        db.store
            .create_account(&format!("acct{writer}"), "free")
            .await
            .unwrap();
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let store = db.store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            loop {
                // Read `done` before polling, so the last poll follows every commit.
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let page = store.changes_after(after, 1000).await.unwrap();
                if let Some(last) = page.last() {
                    after = last.id;
                }
                seen.extend(page.into_iter().map(|change| change.id));
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let plans = ["hobby", "pro", "free"];
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = db.store.clone();
            tokio::spawn(async move {
                for step in 0..CHANGES_PER_WRITER {
                    store
                        .set_plan(&format!("acct{writer}"), plans[step % plans.len()])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = poller.await.unwrap();

    let all: Vec<i64> = sqlx::query("SELECT id FROM changes ORDER BY id")
        .fetch_all(db.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("id").unwrap())
        .collect();
    assert_eq!(all.len(), WRITERS * CHANGES_PER_WRITER);
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        seen.len(),
        "seen twice"
    );
    assert_eq!(seen, all, "the poller missed or reordered changes");
}
