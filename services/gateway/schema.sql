-- The gateway's own tables: people who sign in and API keys for machines. Idempotent.
CREATE TABLE IF NOT EXISTS gateway_users (
    username      text PRIMARY KEY,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'feed', 'analyst', 'viewer')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is kept: a leaked table does not leak working keys.
CREATE TABLE IF NOT EXISTS gateway_api_keys (
    name       text PRIMARY KEY,
    key_sha256 text NOT NULL UNIQUE,
    role       text NOT NULL CHECK (role IN ('admin', 'feed', 'analyst', 'viewer')),
    created_at timestamptz NOT NULL DEFAULT now()
);
