-- Browser users and their sessions (SQLite). Keep in step with ../postgres/0003_users_sessions.sql.
--
-- Neither a password nor a session id is ever stored: `password_hash` is an argon2id PHC string
-- and `id_hash` is the hex SHA-256 of a random 256-bit session id, so a copy of this database
-- signs nobody in. Emails are stored lower-cased (printable ASCII only, so SQLite's ASCII-only
-- `lower()` and PostgreSQL's agree) and are unique.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE CHECK (email <> '' AND email = lower(email)),
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX users_account_id ON users (account_id);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY NOT NULL CHECK (length(id_hash) = 64),
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    -- Sent back by the page in `X-CSRF-Token` on every state-changing request; not a credential
    -- on its own (it only works together with the session cookie).
    csrf_token TEXT NOT NULL CHECK (length(csrf_token) = 64)
) STRICT;

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
