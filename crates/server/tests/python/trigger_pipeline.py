"""python-gitlab's project.trigger_pipeline against Pipewright, then what a client does next."""
import json
import os
import warnings

import gitlab

warnings.simplefilter("error")
gl = gitlab.Gitlab(os.environ["PIPEWRIGHT_URL"], private_token=os.environ["PIPEWRIGHT_TOKEN"])
project = gl.projects.get(int(os.environ["PROJECT_ID"]))
pipeline = project.trigger_pipeline("main", os.environ["TRIGGER_TOKEN"], variables={"UPLOAD_TO_S3": "true"})
assert pipeline.source == "trigger", pipeline.source
assert pipeline.ref == "main"
pipeline.refresh()
jobs = pipeline.jobs.list(get_all=True)
assert [j.name for j in jobs] == ["run_tests", "build_package", "upload_package"], [j.name for j in jobs]
variables = {v.key: v for v in pipeline.variables.list(get_all=True)}
assert variables["UPLOAD_TO_S3"].value == "true"
payload = json.loads(variables["TRIGGER_PAYLOAD"].value)
assert payload["variables"] == {"UPLOAD_TO_S3": "true"}, payload
assert payload["inputs"] == {}, payload
found = project.pipelines.list(get_all=True, ref="main", source="trigger")
assert pipeline.id in [p.id for p in found]
job = project.jobs.get(jobs[0].id)
assert job.pipeline["project_id"] == project.id
try:
    project.trigger_pipeline("main", "glptt-wrong")
    raise AssertionError("expected 404")
except gitlab.exceptions.GitlabCreateError as e:
    assert e.response_code == 404, e.response_code
print("python-gitlab trigger_pipeline: ok")
