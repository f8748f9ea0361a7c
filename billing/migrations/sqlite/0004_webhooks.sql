-- Outbound webhooks (SQLite). Keep in step with ../postgres/0004_webhooks.sql: both files must
-- mean the same thing.

-- An account's endpoint, and its delivery state: the cursor it has been delivered through, the
-- batch in flight (replayed with the same idempotency key after a crash), and which node holds
-- it (one node delivers an endpoint at a time, so deliveries stay in order).
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    -- The stream filter, as a query string (`correlated=true&itype=ipv4`).
    filter TEXT NOT NULL,
    format TEXT NOT NULL,
    -- HMAC key of the Sluice-Signature header; shown to the account once, at creation.
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    -- Delivered through this log position (`<epoch>.<ms>-<seq>`); NULL: nothing yet, start at
    -- `created_at`.
    cursor TEXT,
    -- The batch in flight: its idempotency key, its last position, failed attempts so far.
    pending_key TEXT,
    pending_through TEXT,
    pending_attempts INTEGER NOT NULL DEFAULT 0 CHECK (pending_attempts >= 0),
    lease_node TEXT,
    -- Unix seconds; the lease is free once this has passed.
    lease_until INTEGER NOT NULL DEFAULT 0,
    last_success_at INTEGER,
    last_error TEXT
) STRICT;

CREATE INDEX webhooks_account ON webhooks (account_id);

-- The delivery log an account reads: every attempt, dead letters (the batch given up on after
-- the last try) and gaps (indicators that left the log before delivery). Pruned to the newest
-- rows per endpoint on insert.
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    batch_key TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    error TEXT,
    indicators INTEGER NOT NULL,
    first_cursor TEXT,
    last_cursor TEXT,
    at INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
