//! Administration commands: `migrate`, `accounts`, `plans`, `tokens` (straight on the database).

use billing::{Scope, StoreError};

use crate::cli::{AccountsCommand, PlansCommand, StoreArgs, TokensCommand, UsageCommand};
use crate::exit;
use crate::serve::open_store;

pub async fn migrate(store: StoreArgs) -> anyhow::Result<()> {
    let opened = open_store(&store.database, &store.data_dir).await?;
    println!("database is migrated ({})", opened.backend_name());
    Ok(())
}

pub async fn accounts(command: AccountsCommand) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Create { name, plan, store } => {
            let store = open_store(&store.database, &store.data_dir).await?;
            let account = store
                .create_account(&name, &plan)
                .await
                .map_err(user_error)?;
            println!(
                "created account `{}` on plan `{}`",
                account.name, account.plan
            );
            Ok(())
        }
    }
}

pub async fn plans(command: PlansCommand) -> anyhow::Result<()> {
    match command {
        PlansCommand::List { store } => {
            let store = open_store(&store.database, &store.data_dir).await?;
            println!(
                "{:<12} {:>9} {:>9} {:>6} {:>12} {:>8} {:>8} {:>6} {:>10}",
                "PLAN",
                "PRICE",
                "FIREHOSE",
                "CONNS",
                "RATE/S",
                "BURST",
                "REPLAY",
                "TLP",
                "CORRELATED"
            );
            for plan in store.plans().await.map_err(user_error)? {
                let limits = &plan.limits;
                let price = plan
                    .price_cents
                    .map(|cents| format!("${}/mo", cents / 100))
                    .unwrap_or_else(|| "contract".into());
                let firehose = if limits.firehose {
                    "yes".to_owned()
                } else {
                    format!("{}/s", limits.sample_per_second.unwrap_or(0))
                };
                let unlimited =
                    |value: Option<u32>| value.map_or("unlimited".to_owned(), |v| v.to_string());
                println!(
                    "{:<12} {:>9} {:>9} {:>6} {:>12} {:>8} {:>8} {:>6} {:>10}",
                    plan.name,
                    price,
                    firehose,
                    limits.max_connections,
                    unlimited(limits.rate_per_second),
                    unlimited(limits.burst),
                    humantime::format_duration(limits.replay_window).to_string(),
                    limits.max_tlp.as_str(),
                    if limits.correlated { "yes" } else { "no" },
                );
            }
            Ok(())
        }
        PlansCommand::Set {
            account,
            plan,
            store,
        } => {
            let store = open_store(&store.database, &store.data_dir).await?;
            let account = store.set_plan(&account, &plan).await.map_err(user_error)?;
            println!(
                "account `{}` is now on plan `{}`",
                account.name, account.plan
            );
            Ok(())
        }
    }
}

pub async fn usage(command: UsageCommand) -> anyhow::Result<()> {
    let UsageCommand::Export {
        month,
        format,
        store,
    } = command;
    let store = open_store(&store.database, &store.data_dir).await?;
    let last = month
        .checked_add_months(chrono::Months::new(1))
        .and_then(|next| next.pred_opt())
        .unwrap_or(month);
    let totals = store.usage_totals(month, last).await.map_err(user_error)?;
    let month = month.format("%Y-%m").to_string();
    if format == "json" {
        let rows: Vec<serde_json::Value> = totals
            .iter()
            .map(|total| {
                let mut row = serde_json::to_value(total).unwrap_or_default();
                row["month"] = month.clone().into();
                row
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "month,account,plan,price_cents,days,delivered,dropped,bytes,connections,peak_connections"
    );
    for total in &totals {
        println!(
            "{month},{},{},{},{},{},{},{},{},{}",
            csv_field(&total.account),
            csv_field(&total.plan),
            total
                .price_cents
                .map(|cents| cents.to_string())
                .unwrap_or_default(),
            total.days,
            total.delivered,
            total.dropped,
            total.bytes,
            total.connections,
            total.peak_connections
        );
    }
    Ok(())
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (account names never do;
/// plan names come from the database).
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

pub async fn tokens(command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create {
            account,
            scope,
            expires,
            store,
        } => {
            let scope: Scope = scope.parse().map_err(|_| {
                exit::config(format!("--scope `{scope}`: expected read, write or admin"))
            })?;
            let store = open_store(&store.database, &store.data_dir).await?;
            let (record, token) = store
                .create_token(&account, scope, expires)
                .await
                .map_err(user_error)?;
            eprintln!(
                "created token {} for `{}` (scope {}{}); it is shown once:",
                record.id,
                record.account,
                record.scope.as_str(),
                record
                    .expires_at
                    .map(|at| format!(", expires {}", at.to_rfc3339()))
                    .unwrap_or_default()
            );
            println!("{}", token.expose());
            Ok(())
        }
        TokensCommand::List { account, store } => {
            let store = open_store(&store.database, &store.data_dir).await?;
            println!(
                "{:<18} {:<6} {:<26} {:<26} {:<26}",
                "ID", "SCOPE", "CREATED", "EXPIRES", "REVOKED"
            );
            let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
                at.map_or("-".to_owned(), |at| at.to_rfc3339())
            };
            for token in store.tokens(&account).await.map_err(user_error)? {
                println!(
                    "{:<18} {:<6} {:<26} {:<26} {:<26}",
                    token.id,
                    token.scope.as_str(),
                    token.created_at.to_rfc3339(),
                    time(token.expires_at),
                    time(token.revoked_at),
                );
            }
            Ok(())
        }
        TokensCommand::Revoke { id, store } => {
            let store = open_store(&store.database, &store.data_dir).await?;
            if store.revoke_token(&id).await.map_err(user_error)? {
                println!("revoked token {id}");
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "no active token with id `{id}` (see `sluice tokens list --account NAME`)"
                ))
            }
        }
    }
}

/// Store errors that are the user's to fix (unknown plan, duplicate name…) are printed as they
/// are; database failures keep their context.
fn user_error(error: StoreError) -> anyhow::Error {
    match error {
        StoreError::Db(error) => error.context("database error"),
        other => anyhow::anyhow!("{other}"),
    }
}
