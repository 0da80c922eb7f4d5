"""python-gitlab's trigger-token calls against Pipewright: create, list, get, save, delete, and
GitLab's permission rules as a second Maintainer and a Developer see them."""
import os
import warnings

import gitlab

warnings.simplefilter("error")
url = os.environ["PIPEWRIGHT_URL"]
pid = int(os.environ["PROJECT_ID"])
m1 = gitlab.Gitlab(url, private_token=os.environ["MAINTAINER1"])
m2 = gitlab.Gitlab(url, private_token=os.environ["MAINTAINER2"])
dev = gitlab.Gitlab(url, private_token=os.environ["DEVELOPER"])

project = m1.projects.get(pid)
trigger = project.triggers.create({"description": "deploy"})
assert trigger.token.startswith("glptt-") and len(trigger.token) == 46, trigger.token
assert trigger.owner["username"] == "maintainer1"
assert trigger in project.triggers.list(get_all=True)
fetched = project.triggers.get(trigger.id)
assert fetched.token == trigger.token and fetched.description == "deploy"

# The owner edits; a second Maintainer sees 4 characters and may not edit.
fetched.description = "deploy to prod"
fetched.save()
assert project.triggers.get(trigger.id).description == "deploy to prod"
as_m2 = m2.projects.get(pid, lazy=True)
seen = as_m2.triggers.get(trigger.id)
assert seen.token == trigger.token[6:10], seen.token
seen.description = "hijacked"
try:
    seen.save()
    raise AssertionError("a non-owner Maintainer must not update")
except gitlab.exceptions.GitlabUpdateError as e:
    assert e.response_code == 403, e.response_code

# A Developer may not list or create.
as_dev = dev.projects.get(pid, lazy=True)
for call in (lambda: as_dev.triggers.list(get_all=True), lambda: as_dev.triggers.create({"description": "x"})):
    try:
        call()
        raise AssertionError("a Developer must be refused")
    except (gitlab.exceptions.GitlabListError, gitlab.exceptions.GitlabCreateError) as e:
        assert e.response_code == 403, e.response_code

# Delete, then 404.
trigger.delete()
try:
    project.triggers.get(trigger.id)
    raise AssertionError("expected 404 after delete")
except gitlab.exceptions.GitlabGetError as e:
    assert e.response_code == 404, e.response_code
print("python-gitlab trigger tokens: ok")
