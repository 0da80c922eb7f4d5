-- CI/CD variables of projects and of the instance, with values sealed under the server key
-- like trigger tokens, and the project setting that decides who may pass pipeline variables.

CREATE TABLE ci_variables (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL: an instance variable.
    project_id        BIGINT REFERENCES projects(id) ON DELETE CASCADE,
    key               TEXT NOT NULL,
    value_sealed      TEXT NOT NULL,
    variable_type     TEXT NOT NULL,
    protected         BOOLEAN NOT NULL,
    masked            BOOLEAN NOT NULL,
    raw               BOOLEAN NOT NULL,
    description       TEXT,
    environment_scope TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX ci_variables_project_key ON ci_variables(project_id, key, environment_scope);
CREATE UNIQUE INDEX ci_variables_instance_key ON ci_variables(key) WHERE project_id IS NULL;

CREATE TABLE project_ci_settings (
    project_id BIGINT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    pipeline_variables_minimum_override_role TEXT NOT NULL
);
