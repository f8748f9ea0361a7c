-- The change log, usage metering and billing events (SQLite). Keep in step with
-- ../postgres/0002_changes_usage_billing_events.sql: both files must mean the same thing.

-- What live connections must follow (an account's plan, a plan's limits, a revoked token),
-- written in the same transaction as the change itself; every gateway node polls `id > last`.
-- AUTOINCREMENT, not a plain rowid: ids are never reused, even after pruning has deleted the
-- newest rows, so a node polling past its last seen id can never miss a change behind a
-- reused id. `kind` has no CHECK on purpose: during a rolling upgrade a newer node may write a
-- kind older nodes do not know, and they skip it rather than fail (see `billing::changes`).
CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    account_id INTEGER,
    plan TEXT,
    token_id TEXT,
    created_at INTEGER NOT NULL
) STRICT;

-- Pruning deletes by age.
CREATE INDEX changes_created_at ON changes (created_at);

-- Usage per account and UTC day, for invoicing (SPEC §5). Counters only ever grow; gateway
-- nodes add their deltas. `peak_connections` is the largest peak any single node reported.
CREATE TABLE usage_daily (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- 'YYYY-MM-DD' (UTC): sorts like the date it names.
    day TEXT NOT NULL CHECK (length(day) = 10),
    delivered INTEGER NOT NULL CHECK (delivered >= 0),
    dropped INTEGER NOT NULL CHECK (dropped >= 0),
    bytes INTEGER NOT NULL CHECK (bytes >= 0),
    -- Connections opened that day.
    connections INTEGER NOT NULL CHECK (connections >= 0),
    peak_connections INTEGER NOT NULL CHECK (peak_connections >= 0),
    PRIMARY KEY (account_id, day)
) STRICT;

-- Every subscription event received from the billing provider, by its id: the primary key is
-- what makes a redelivered event a no-op.
CREATE TABLE billing_events (
    id TEXT PRIMARY KEY NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    -- The plan the event moves the account to (`free` for `subscription.deleted`).
    plan TEXT NOT NULL,
    -- The provider's creation time (unix seconds): orders events, whatever order they arrive in.
    created INTEGER NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;

-- `created` of the newest subscription event applied to the account: an older event arriving
-- late is recorded but does not change the plan. NULL until the first event.
ALTER TABLE accounts ADD COLUMN plan_event_created INTEGER;
