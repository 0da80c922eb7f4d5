-- Issue 17 (repository pages): a commit's pipelines. The commits page shows each commit's
-- latest pipeline, found by its SHA; without this index every lookup scans the project's
-- pipelines.
CREATE INDEX pipelines_project_sha ON pipelines(project_id, sha, id);
