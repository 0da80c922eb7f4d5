"""python-gitlab (the real client, from PyPI) with groups, as a team would use them: a group and
a subgroup, members (direct and inherited), a project in the subgroup, the group's projects.

Run by the Rust test `python_gitlab::groups` with PIPEWRIGHT_URL and PIPEWRIGHT_TOKEN set.
"""
import os
import warnings

import gitlab
from gitlab.const import AccessLevel

warnings.simplefilter("error")  # a pagination or URL warning from python-gitlab is a failure

url = os.environ["PIPEWRIGHT_URL"]
gl = gitlab.Gitlab(url, private_token=os.environ["PIPEWRIGHT_TOKEN"])
gl.auth()

dev = gl.users.create(
    {"username": "pydev", "name": "Py Dev", "email": "pydev@example.com", "password": "py-password-123"}
)
as_dev = gitlab.Gitlab(url, private_token=dev.personal_access_tokens.create({"name": "py", "scopes": ["api"]}).token)

acme = gl.groups.create({"name": "Acme", "path": "acme"})
backend = gl.groups.create({"name": "Backend", "path": "backend", "parent_id": acme.id})
assert backend.full_path == "acme/backend", backend.full_path
assert backend.parent_id == acme.id
assert gl.groups.get("acme/backend").id == backend.id
assert [g.id for g in acme.subgroups.list(get_all=True)] == [backend.id]

member = acme.members.create({"user_id": dev.id, "access_level": AccessLevel.DEVELOPER})
assert member.access_level == AccessLevel.DEVELOPER
inherited = {m.username: m.access_level for m in backend.members_all.list(get_all=True)}
assert inherited["pydev"] == AccessLevel.DEVELOPER, inherited
assert "pydev" not in [m.username for m in backend.members.list(get_all=True)]

project = gl.projects.create({"name": "api", "namespace_id": backend.id})
assert project.path_with_namespace == "acme/backend/api", project.path_with_namespace
assert project.namespace["kind"] == "group"
assert [p.id for p in acme.projects.list(include_subgroups=True, get_all=True)] == [project.id]
assert acme.projects.list(get_all=True) == []

# The inherited Developer sees the private project by its full path; a Guest role still does;
# leaving the group hides it.
assert as_dev.projects.get("acme/backend/api").id == project.id
member.access_level = AccessLevel.GUEST
member.save()
assert acme.members.get(dev.id).access_level == AccessLevel.GUEST
acme.members.delete(dev.id)
try:
    as_dev.projects.get("acme/backend/api")
    raise AssertionError("a former member still sees the project")
except gitlab.exceptions.GitlabGetError as e:
    assert e.response_code == 404, e.response_code

# Group CI/CD variables.
acme.variables.create({"key": "DEPLOY_REGION", "value": "eu-west-1"})
assert [v.key for v in acme.variables.list(get_all=True)] == ["DEPLOY_REGION"]
region = acme.variables.get("DEPLOY_REGION")
region.value = "us-east-1"
region.save()
assert acme.variables.get("DEPLOY_REGION").value == "us-east-1"
acme.variables.delete("DEPLOY_REGION")
assert acme.variables.list(get_all=True) == []

# Creation levels: set at creation, shown, changed, enforced.
strict = gl.groups.create(
    {"name": "Strict", "path": "strict", "project_creation_level": "maintainer", "subgroup_creation_level": "owner"}
)
assert strict.project_creation_level == "maintainer", strict.project_creation_level
assert strict.subgroup_creation_level == "owner", strict.subgroup_creation_level
assert acme.project_creation_level == "developer", acme.project_creation_level
strict.members.create({"user_id": dev.id, "access_level": AccessLevel.DEVELOPER})
try:
    as_dev.projects.create({"name": "nope", "namespace_id": strict.id})
    raise AssertionError("a Developer created a project under project_creation_level maintainer")
except gitlab.exceptions.GitlabCreateError as e:
    assert e.response_code == 400, e.response_code
    assert "namespace" in str(e.error_message), e.error_message
strict.project_creation_level = "developer"
strict.save()
assert gl.groups.get(strict.id).project_creation_level == "developer"
assert as_dev.projects.create({"name": "yes", "namespace_id": strict.id}).path_with_namespace == "strict/yes"
try:
    strict.project_creation_level = "everyone"
    strict.save()
    raise AssertionError("an invalid project_creation_level was accepted")
except gitlab.exceptions.GitlabUpdateError as e:
    assert e.response_code == 400, e.response_code
    assert "project_creation_level does not have a valid value" in e.error_message, e.error_message

backend.description = "The backend"
backend.save()
assert gl.groups.get(backend.id).description == "The backend"
gl.groups.delete(backend.id)
assert [g.id for g in acme.subgroups.list(get_all=True)] == []
print("groups: ok")
