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

-- The audit log: who did what, when, from where, under which request id, and how it ended.
-- Written only by services/gateway/audit.py (one row per admin action or feed write), read by
-- GET /v1/admin/audit. Append-only: the role that runs this migration gives up UPDATE, DELETE
-- and TRUNCATE on it, and triggers refuse those statements for everyone else too (superusers
-- included). The owner of the table could still re-grant itself or drop a trigger: a
-- deployment that must rule that out makes the table owned by another role (docs/audit.md).
CREATE TABLE IF NOT EXISTS audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor        text NOT NULL,          -- user:<name> or key:<name>
    actor_key_id text,                   -- the API key's id when the actor is a key
    role         text NOT NULL,
    action       text NOT NULL,          -- admin.key.create, feed.events, ...
    target       text,                   -- the user name, key id, game or job the action was about
    address      text NOT NULL,
    request_id   text NOT NULL,
    status       smallint NOT NULL,      -- the HTTP status the caller was answered
    detail       jsonb NOT NULL DEFAULT '{}'
);
-- Indexes, triggers and grants are the table owner's: a deployment that gives audit_log to a role
-- of its own (docs/audit.md) keeps them there, and this migration, run by the services' role,
-- then leaves them alone instead of failing.
DO $audit$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'audit_log'::regclass), 'USAGE') THEN
        RAISE NOTICE 'audit_log belongs to another role; its indexes, triggers and grants are left to it';
        RETURN;
    END IF;
    CREATE INDEX IF NOT EXISTS audit_log_newest ON audit_log (at DESC, id DESC);
    CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log (actor, at DESC, id DESC);
    CREATE INDEX IF NOT EXISTS audit_log_request ON audit_log (request_id);
    CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $refuse$
    BEGIN
        RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $refuse$;
    DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;
    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
    DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC, CURRENT_USER;
END
$audit$;
