-- Idempotency-Key claims of the pipeline-creating endpoints (issue 14 §4). A request claims its
-- (project, credential, key) with an INSERT under the primary key before it creates anything;
-- a finished request records the answer it gave (status and JSON body) so a repeat within the
-- key's lifetime is answered with it, by any replica and after a restart. `credential` is an
-- identity (`token:<digest>`, `user:<id>`), never a raw token. `status_code` is NULL while the
-- creating request is still running. Expired rows are swept by the maintenance loop.
CREATE TABLE idempotency_keys (
    project_id      BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    credential      TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    status_code     BIGINT,
    response        TEXT,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (project_id, credential, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys(expires_at);
