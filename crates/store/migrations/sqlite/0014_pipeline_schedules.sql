-- Pipeline schedules (GitLab's `ci_pipeline_schedules`): a ref run on a cron pattern in a time
-- zone, as its owner. `next_run_at` is the due tick; the scheduler claims it with a
-- conditional update (from the value it read to the next one), so every tick runs once however
-- many servers share the database. NULL: the pattern never matches again.
CREATE TABLE pipeline_schedules (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    -- NULL: the owner was deleted; the schedule is deactivated until someone takes it over.
    owner_id        BIGINT REFERENCES users(id) ON DELETE SET NULL,
    description     TEXT NOT NULL,
    ref_name        TEXT NOT NULL,
    cron            TEXT NOT NULL,
    cron_timezone   TEXT NOT NULL,
    next_run_at     BIGINT,
    active          BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX pipeline_schedules_project ON pipeline_schedules(project_id, id);
CREATE INDEX pipeline_schedules_due ON pipeline_schedules(next_run_at) WHERE active;

-- A schedule's variables, sealed under the server key like every other variable value.
CREATE TABLE pipeline_schedule_variables (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id     BIGINT NOT NULL REFERENCES pipeline_schedules(id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    value_sealed    TEXT NOT NULL,
    variable_type   TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (schedule_id, key)
);

-- The pipelines a schedule started (GitLab's `ci_pipelines.pipeline_schedule_id`).
CREATE TABLE pipeline_schedule_pipelines (
    schedule_id     BIGINT NOT NULL REFERENCES pipeline_schedules(id) ON DELETE CASCADE,
    pipeline_id     BIGINT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    PRIMARY KEY (schedule_id, pipeline_id)
);
CREATE INDEX pipeline_schedule_pipelines_pipeline ON pipeline_schedule_pipelines(pipeline_id);
