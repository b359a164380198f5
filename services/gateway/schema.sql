-- The gateway's own tables: people who sign in and API keys for machines. Idempotent.
CREATE TABLE IF NOT EXISTS gateway_users (
    username      text PRIMARY KEY,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'feed', 'analyst', 'viewer')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- A disabled user cannot sign in or refresh. token_generation is bumped by logout, a password or
-- role change and disabling: access tokens carry the generation they were issued under, and one
-- of an older generation is refused (Redis caches the number; this column is the truth).
ALTER TABLE gateway_users ADD COLUMN IF NOT EXISTS disabled boolean NOT NULL DEFAULT false;
ALTER TABLE gateway_users ADD COLUMN IF NOT EXISTS token_generation bigint NOT NULL DEFAULT 0;

-- Only the SHA-256 of a key is kept: a leaked table does not leak working keys. A revoked key
-- stays as a row (who had it, when it was last used); one active key per name.
CREATE TABLE IF NOT EXISTS gateway_keys (
    key_id       text PRIMARY KEY,
    name         text NOT NULL,
    prefix       text NOT NULL,
    key_sha256   text NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('admin', 'feed', 'analyst', 'viewer')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS gateway_keys_active_name ON gateway_keys (name) WHERE revoked_at IS NULL;

-- Keys made before key ids existed keep working under an id derived from their digest.
DO $$
BEGIN
    IF to_regclass('gateway_api_keys') IS NOT NULL THEN
        INSERT INTO gateway_keys (key_id, name, prefix, key_sha256, role, created_at)
        SELECT substr(key_sha256, 1, 12), name, 'snp_', key_sha256, role, created_at FROM gateway_api_keys
        ON CONFLICT DO NOTHING;
        DROP TABLE gateway_api_keys;
    END IF;
END
$$;
