-- Runners: machines that take jobs over GitLab's runner API. The authentication token
-- (`glrt-…`) is stored only as its SHA-256 digest.

CREATE TABLE runners (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    token_digest    TEXT NOT NULL UNIQUE,
    runner_type     TEXT NOT NULL,
    project_id      BIGINT REFERENCES projects(id) ON DELETE CASCADE,
    creator_id      BIGINT REFERENCES users(id) ON DELETE SET NULL,
    description     TEXT NOT NULL DEFAULT '',
    tag_list        TEXT NOT NULL DEFAULT '',
    run_untagged    BOOLEAN NOT NULL DEFAULT TRUE,
    paused          BOOLEAN NOT NULL DEFAULT FALSE,
    locked          BOOLEAN NOT NULL DEFAULT FALSE,
    access_level    TEXT NOT NULL DEFAULT 'not_protected',
    maximum_timeout BIGINT,
    created_at      BIGINT NOT NULL,
    contacted_at    BIGINT
);
CREATE INDEX runners_project ON runners(project_id);
