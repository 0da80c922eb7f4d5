-- `trigger:` jobs (bridges) find the pipeline they started through its upstream job.
CREATE INDEX pipelines_upstream_job ON pipelines(upstream_job_id);
