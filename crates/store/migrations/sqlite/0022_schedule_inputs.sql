-- A pipeline schedule's CI/CD inputs (GitLab 17.11: `ci_pipeline_schedule_inputs`), passed to
-- every pipeline it runs. The value is JSON (a string, number, boolean or array), sealed under
-- the server key as GitLab encrypts it.
CREATE TABLE pipeline_schedule_inputs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id     BIGINT NOT NULL REFERENCES pipeline_schedules(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    value_sealed    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (schedule_id, name)
);
