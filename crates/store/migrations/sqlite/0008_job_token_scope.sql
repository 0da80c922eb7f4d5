-- GitLab's job token scope ("Limit access to this project"): with it enabled (the default,
-- as in current GitLab) a job token from another project may reach this project only when
-- that project is on this project's allowlist.

CREATE TABLE job_token_scopes (
    project_id BIGINT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    enabled    BOOLEAN NOT NULL
);
CREATE TABLE job_token_allowlist (
    project_id        BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    target_project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (project_id, target_project_id)
);
