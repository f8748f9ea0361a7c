-- Accounts, plans and API tokens (SQLite). Keep in step with ../postgres/0001_accounts_plans_tokens.sql:
-- both files must mean the same thing; only the spelling of types differs.
--
-- Times are unix seconds in INTEGER columns: sqlx's `Any` driver only carries basic types.
-- Flags are INTEGER 0/1: SQLite has no boolean type and sqlx's `Any` driver rejects a declared
-- BOOLEAN column on SQLite. STRICT makes SQLite enforce the declared types like PostgreSQL does.

CREATE TABLE plans (
    name TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
    -- US cents per month; NULL for contract pricing.
    price_cents INTEGER CHECK (price_cents IS NULL OR price_cents >= 0),
    firehose INTEGER NOT NULL CHECK (firehose IN (0, 1)),
    -- For sample plans: indicators per second the sample carries.
    sample_per_second INTEGER CHECK (sample_per_second IS NULL OR sample_per_second BETWEEN 0 AND 4294967295),
    max_connections INTEGER NOT NULL CHECK (max_connections BETWEEN 0 AND 4294967295),
    -- NULL: unlimited.
    rate_per_second INTEGER CHECK (rate_per_second IS NULL OR rate_per_second BETWEEN 0 AND 4294967295),
    burst INTEGER CHECK (burst IS NULL OR burst BETWEEN 0 AND 4294967295),
    replay_window_seconds INTEGER NOT NULL CHECK (replay_window_seconds >= 0),
    max_tlp TEXT NOT NULL CHECK (max_tlp IN ('white', 'green', 'amber', 'red')),
    correlated INTEGER NOT NULL CHECK (correlated IN (0, 1)),
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    -- A plan in use cannot be deleted; renaming a plan follows through.
    plan TEXT NOT NULL REFERENCES plans (name) ON UPDATE CASCADE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    -- Public id (`tok_…`), safe to log and show; the secret is only ever stored as `hash`.
    id TEXT PRIMARY KEY NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    -- Hex SHA-256 of the plaintext token.
    hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64),
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    last_used_at INTEGER
) STRICT;

CREATE INDEX tokens_account_id ON tokens (account_id);

-- The default plans of SPEC §5 (equal to `domain::PlanLimits::defaults()`, which a test checks).
INSERT INTO plans (name, price_cents, firehose, sample_per_second, max_connections, rate_per_second, burst, replay_window_seconds, max_tlp, correlated, updated_at) VALUES
    ('free',       0,    0, 1,    1,   1,    10,    0,     'green', 0, CAST(strftime('%s', 'now') AS INTEGER)),
    ('hobby',      2500, 1, NULL, 2,   100,  1000,  3600,  'amber', 1, CAST(strftime('%s', 'now') AS INTEGER)),
    ('pro',        5000, 1, NULL, 10,  2000, 20000, 86400, 'amber', 1, CAST(strftime('%s', 'now') AS INTEGER)),
    ('enterprise', NULL, 1, NULL, 100, NULL, NULL,  86400, 'red',   1, CAST(strftime('%s', 'now') AS INTEGER));
