-- Web UI sign-in sessions. The cookie holds a random session id; only its SHA-256 digest is
-- stored, so a database leak does not hand out sessions. Expiry slides with use.
CREATE TABLE web_sessions (
    id_digest       TEXT PRIMARY KEY,
    user_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions(user_id);
CREATE INDEX web_sessions_expiry ON web_sessions(expires_at);

-- Failed sign-ins per `user:<login>` and `ip:<address>` in the current window, shared by every
-- replica so a replica set does not multiply the guessing budget.
CREATE TABLE sign_in_failures (
    key             TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    window_start    BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_window ON sign_in_failures(window_start);

-- The pipelines and jobs pages filter by status and source, newest first, without counting a
-- project's whole history.
CREATE INDEX pipelines_project_status ON pipelines(project_id, status, id);
CREATE INDEX pipelines_project_source ON pipelines(project_id, source, id);
CREATE INDEX jobs_project_status ON jobs(project_id, status, id);
