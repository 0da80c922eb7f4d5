-- Project webhooks, their durable delivery queue (which is also the record of recent
-- deliveries), and instance settings such as allow_local_requests_from_web_hooks_and_services.

CREATE TABLE project_hooks (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id                BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    url                       TEXT NOT NULL,
    -- The secret token sent as X-Gitlab-Token, sealed under the server key.
    token_sealed              TEXT,
    push_events               BOOLEAN NOT NULL,
    push_events_branch_filter TEXT,
    tag_push_events           BOOLEAN NOT NULL,
    pipeline_events           BOOLEAN NOT NULL,
    job_events                BOOLEAN NOT NULL,
    enable_ssl_verification   BOOLEAN NOT NULL,
    created_at                BIGINT NOT NULL
);
CREATE INDEX project_hooks_project ON project_hooks(project_id, id);

CREATE TABLE hook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    hook_id         BIGINT NOT NULL REFERENCES project_hooks(id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    uuid            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    -- pending (waiting for next_attempt_at), sending (claimed until next_attempt_at),
    -- delivered, failed (gave up).
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    duration_ms     BIGINT,
    error           TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX hook_deliveries_due ON hook_deliveries(state, next_attempt_at);
CREATE INDEX hook_deliveries_hook ON hook_deliveries(hook_id, id);

CREATE TABLE application_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
