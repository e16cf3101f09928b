-- The Jobs system and webhooks (same portable conventions as 0001).

-- A job groups tasks: a fast-compositor miss, or a batch from POST /api/jobs.
-- `status` is pending | running | stopped; `scheduler_state` is
-- scheduled | finished | cancelled.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    title            TEXT NOT NULL,
    type             TEXT NOT NULL,
    status           TEXT NOT NULL,
    scheduler_state  TEXT NOT NULL,
    parameters       TEXT NOT NULL,
    priority         BIGINT NOT NULL,
    created_by       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX jobs_org_created ON jobs (org_id, created_at);
CREATE INDEX jobs_org_status ON jobs (org_id, status);

-- A task renders one layer key. `job_id` is the job that created it; other
-- jobs that wanted the same layer while it was active join it through
-- `job_tasks`. `status` is pending | running | stopped; `run_result` is
-- NULL until stopped, then success | failure | cancelled.
CREATE TABLE tasks (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    job_id          TEXT NOT NULL,
    layer_key       TEXT NOT NULL,
    type            TEXT NOT NULL,
    title           TEXT NOT NULL,
    parameters      TEXT NOT NULL,
    priority        BIGINT NOT NULL,
    status          TEXT NOT NULL,
    run_result      TEXT,
    attempts        BIGINT NOT NULL,
    max_attempts    BIGINT NOT NULL,
    not_before      BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_expires   BIGINT,
    run_id          TEXT,
    error           TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
-- The invariant of the queue: at most one active task per layer key.
CREATE UNIQUE INDEX tasks_one_active_per_key ON tasks (layer_key) WHERE status <> 'stopped';
CREATE INDEX tasks_claim ON tasks (status, not_before);
CREATE INDEX tasks_key ON tasks (layer_key, updated_at);
CREATE INDEX tasks_job ON tasks (job_id);

-- One render record per layer key (two workers that both believe they
-- rendered it cannot both record it); registered uploads are not limited.
CREATE UNIQUE INDEX layers_one_render_per_key ON layers (layer_key) WHERE source = 'render';

CREATE TABLE job_tasks (
    job_id   TEXT NOT NULL,
    task_id  TEXT NOT NULL,
    PRIMARY KEY (job_id, task_id)
);
CREATE INDEX job_tasks_task ON job_tasks (task_id);

-- One attempt of a task. `result_code` is NULL while running, then
-- Success | Failed. `files` is a JSON array of file ids.
CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    worker       TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    stopped_at   BIGINT,
    result_code  TEXT,
    error        TEXT,
    files        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX runs_task ON runs (task_id, created_at);
CREATE INDEX runs_job ON runs (job_id, created_at);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    topic       TEXT NOT NULL,
    address     TEXT NOT NULL,
    filter      TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE INDEX webhooks_org_topic ON webhooks (org_id, topic);

-- One event for one webhook. `status` is pending | delivered | failed.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL,
    webhook_id       TEXT NOT NULL,
    topic            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    lease_expires    BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, created_at);

-- Every delivery attempt: when, how long, what the receiver answered.
CREATE TABLE webhook_attempts (
    id           TEXT PRIMARY KEY,
    delivery_id  TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    status_code  BIGINT,
    error        TEXT,
    duration_ms  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
