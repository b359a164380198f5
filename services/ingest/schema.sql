-- The ingest service's import jobs. Idempotent: applied at start-up under an advisory lock.
-- A job and its files live here so that a job survives an ingest restart and any instance can
-- take over a job whose owner stopped sending heartbeats.
CREATE TABLE IF NOT EXISTS import_jobs (
    id              text        PRIMARY KEY,
    format          text        NOT NULL,
    status          text        NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed')),
    spool_path      text        NOT NULL,
    files_total     integer     NOT NULL DEFAULT 0,
    files_done      integer     NOT NULL DEFAULT 0,  -- finished, imported or failed
    files_failed    integer     NOT NULL DEFAULT 0,
    events_total    bigint      NOT NULL DEFAULT 0,
    events_accepted bigint      NOT NULL DEFAULT 0,
    duplicates      bigint      NOT NULL DEFAULT 0,
    errors          jsonb       NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    owner           text,
    heartbeat       timestamptz
);
-- The claim query scans only open jobs, oldest first.
CREATE INDEX IF NOT EXISTS import_jobs_open ON import_jobs (created_at) WHERE status IN ('queued', 'running');

CREATE TABLE IF NOT EXISTS import_files (
    job_id      text        NOT NULL REFERENCES import_jobs (id) ON DELETE CASCADE,
    seq         integer     NOT NULL,  -- upload order; names may repeat across parts
    name        text        NOT NULL,
    path        text,                  -- the spooled file; null when there is nothing to read
    status      text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    events      integer     NOT NULL DEFAULT 0,
    accepted    integer     NOT NULL DEFAULT 0,
    duplicates  integer     NOT NULL DEFAULT 0,
    error       text,
    finished_at timestamptz,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX IF NOT EXISTS import_files_pending ON import_files (job_id, seq) WHERE status = 'pending';
