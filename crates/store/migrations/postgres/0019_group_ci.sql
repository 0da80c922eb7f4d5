-- Group CI/CD variables and the job token allowlist's groups. A `ci_variables` row with a
-- `group_id` (and no `project_id`) belongs to a group, and every project below the group
-- receives it (a project's own variable and a nearer group's win). An instance variable is now
-- the row with neither.

ALTER TABLE ci_variables ADD COLUMN group_id BIGINT REFERENCES namespaces(id) ON DELETE CASCADE;
DROP INDEX ci_variables_instance_key;
CREATE UNIQUE INDEX ci_variables_instance_key ON ci_variables(key)
    WHERE project_id IS NULL AND group_id IS NULL;
CREATE UNIQUE INDEX ci_variables_group_key ON ci_variables(group_id, key, environment_scope)
    WHERE group_id IS NOT NULL;

-- The job token allowlist's groups (GitLab: `ci_job_token_group_scope_links`): a job of any
-- project in the group, or in a group below it, may reach the project.
CREATE TABLE job_token_group_allowlist (
    project_id      BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    target_group_id BIGINT NOT NULL REFERENCES namespaces(id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (project_id, target_group_id)
);

-- Group runners (`runner_type = 'group_type'`): they take jobs of every project below the group.
ALTER TABLE runners ADD COLUMN group_id BIGINT REFERENCES namespaces(id) ON DELETE CASCADE;
