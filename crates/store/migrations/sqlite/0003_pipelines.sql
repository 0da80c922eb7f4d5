-- Pipelines, their jobs and variables. A pipeline row, its jobs and its variables are written
-- in one transaction, so a pipeline the API acknowledged is complete.

ALTER TABLE projects ADD COLUMN last_pipeline_iid BIGINT NOT NULL DEFAULT 0;

CREATE TABLE pipelines (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id          BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    iid                 BIGINT NOT NULL,
    sha                 TEXT NOT NULL,
    before_sha          TEXT NOT NULL,
    ref_name            TEXT NOT NULL,
    tag                 BOOLEAN NOT NULL,
    protected_ref       BOOLEAN NOT NULL DEFAULT FALSE,
    source              TEXT NOT NULL,
    status              TEXT NOT NULL,
    user_id             BIGINT REFERENCES users(id) ON DELETE SET NULL,
    trigger_id          BIGINT REFERENCES triggers(id) ON DELETE SET NULL,
    -- The trigger's 4 visible characters, kept after the trigger is revoked.
    trigger_short_token TEXT,
    upstream_job_id     BIGINT,
    upstream_pipeline_id BIGINT,
    upstream_project_id BIGINT,
    name                TEXT,
    yaml_errors         TEXT,
    failure_reason      TEXT,
    committed_at        BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    started_at          BIGINT,
    finished_at         BIGINT,
    UNIQUE (project_id, iid)
);
CREATE INDEX pipelines_project_id ON pipelines(project_id, id);
CREATE INDEX pipelines_project_ref ON pipelines(project_id, ref_name, id);
CREATE INDEX pipelines_trigger ON pipelines(trigger_id, id);

-- Variables given when the pipeline was created (trigger variables, TRIGGER_PAYLOAD, API
-- variables): the highest-precedence user variables. Values are sealed under the server key.
CREATE TABLE pipeline_variables (
    pipeline_id     BIGINT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    position        BIGINT NOT NULL,
    key             TEXT NOT NULL,
    value_sealed    TEXT NOT NULL,
    variable_type   TEXT NOT NULL,
    PRIMARY KEY (pipeline_id, position)
);

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline_id     BIGINT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    project_id      BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    stage           TEXT NOT NULL,
    stage_idx       BIGINT NOT NULL,
    position        BIGINT NOT NULL,
    status          TEXT NOT NULL,
    when_condition  TEXT NOT NULL,
    allow_failure   BOOLEAN NOT NULL,
    -- The planned job (script, image, variables, needs, artifacts, …) as JSON from the
    -- config engine; what a runner receives is built from it.
    spec            TEXT NOT NULL,
    failure_reason  TEXT,
    created_at      BIGINT NOT NULL,
    queued_at       BIGINT,
    started_at      BIGINT,
    finished_at     BIGINT
);
CREATE INDEX jobs_pipeline ON jobs(pipeline_id, position);
CREATE INDEX jobs_project ON jobs(project_id, id);
