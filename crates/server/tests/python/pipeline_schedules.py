"""python-gitlab's pipeline schedule calls against Pipewright, unmodified (its
gitlab/v4/objects/pipelines.py): create, list, get, save, variables, play, the schedule's
pipelines, take_ownership, delete, and GitLab's errors as python-gitlab raises them."""
import os
import warnings

import gitlab

warnings.simplefilter("error")
url = os.environ["PIPEWRIGHT_URL"]
pid = int(os.environ["PROJECT_ID"])
dev = gitlab.Gitlab(url, private_token=os.environ["DEVELOPER"])
maint = gitlab.Gitlab(url, private_token=os.environ["MAINTAINER"])

project = dev.projects.get(pid)
schedule = project.pipelineschedules.create(
    {"description": "nightly", "ref": "main", "cron": "0 1 * * *", "cron_timezone": "Europe/Berlin"}
)
assert schedule.ref == "refs/heads/main", schedule.ref
assert schedule.active is True and schedule.cron_timezone == "Europe/Berlin"
assert schedule.owner["username"] == "developer1", schedule.owner
assert schedule.next_run_at.endswith("Z"), schedule.next_run_at
assert schedule in project.pipelineschedules.list(get_all=True)
assert project.pipelineschedules.list(scope="inactive", get_all=True) == []

try:
    project.pipelineschedules.create({"description": "bad", "ref": "main", "cron": "every day"})
    raise AssertionError("an invalid cron must be refused")
except gitlab.exceptions.GitlabCreateError as e:
    assert e.response_code == 400, e.response_code
    assert "syntax is invalid" in str(e.error_message), e.error_message

# The owner edits it and sets its variables.
schedule.cron = "30 2 * * *"
schedule.save()
greeting = schedule.variables.create({"key": "GREETING", "value": "hello"})
assert greeting.variable_type == "env_var" and greeting.value == "hello"
greeting.value = "bonjour"
greeting.save()
schedule.variables.create({"key": "DOOMED", "value": "x"})
schedule.variables.delete("DOOMED")
fetched = project.pipelineschedules.get(schedule.id)
assert fetched.cron == "30 2 * * *"
# (`variables` is python-gitlab's manager; the schedule's own list is an attribute.)
assert fetched.attributes["variables"] == [
    {"variable_type": "env_var", "key": "GREETING", "value": "bonjour", "raw": False}
], fetched.attributes["variables"]
assert fetched.last_pipeline is None

# A Maintainer takes it over, plays it (main is protected), and sees its pipeline.
as_maint = maint.projects.get(pid, lazy=True).pipelineschedules.get(schedule.id)
as_maint.take_ownership()
assert as_maint.owner["username"] == "maintainer1", as_maint.owner
result = as_maint.play()
assert result == {"message": "201 Created"}, result
pipelines = as_maint.pipelines.list(get_all=True)
assert len(pipelines) == 1 and pipelines[0].source == "schedule", pipelines
again = maint.projects.get(pid, lazy=True).pipelineschedules.get(schedule.id)
assert again.last_pipeline["id"] == pipelines[0].id, again.last_pipeline

# Its former owner may no longer edit it.
fetched.description = "mine again"
try:
    fetched.save()
    raise AssertionError("a former owner must not edit")
except gitlab.exceptions.GitlabUpdateError as e:
    assert e.response_code == 403, e.response_code

# (`play()` replaced the object's attributes with its answer, as against GitLab.)
again.delete()
try:
    project.pipelineschedules.get(schedule.id)
    raise AssertionError("expected 404 after delete")
except gitlab.exceptions.GitlabGetError as e:
    assert e.response_code == 404, e.response_code
print("python-gitlab pipeline schedules: ok")
