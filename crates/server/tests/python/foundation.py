"""python-gitlab (the real client, from PyPI) against a running Pipewright, as a new user would.

Run by the Rust test `python_gitlab::foundation` with PIPEWRIGHT_URL and PIPEWRIGHT_TOKEN set.
"""
import os
import sys
import warnings

import gitlab

warnings.simplefilter("error")  # a pagination or URL warning from python-gitlab is a failure

url = os.environ["PIPEWRIGHT_URL"]
token = os.environ["PIPEWRIGHT_TOKEN"]

gl = gitlab.Gitlab(url, private_token=token)
gl.auth()
assert gl.user.username == "root", gl.user.username
version, revision = gl.version()
assert version != "unknown", (version, revision)

# Create a user and a personal access token for them.
user = gl.users.create(
    {"username": "pyuser", "name": "Py User", "email": "py@example.com", "password": "py-password-123"}
)
pat = user.personal_access_tokens.create({"name": "py", "scopes": ["api"]})
assert pat.token.startswith("glpat-")
as_user = gitlab.Gitlab(url, private_token=pat.token)
as_user.auth()
assert as_user.user.username == "pyuser"

# 25 projects, all listed with get_all=True (python-gitlab follows Link rel="next").
for i in range(25):
    gl.projects.create({"name": f"py-project-{i:02d}"})
projects = gl.projects.list(get_all=True, search="py-project")
assert len(projects) == 25, len(projects)
names = sorted(p.name for p in projects)
assert names == [f"py-project-{i:02d}" for i in range(25)], names
# An iterator exposes GitLab's pagination headers.
page = gl.projects.list(per_page=10, search="py-project", iterator=True)
assert page.total == 25 and page.total_pages == 3 and page.next_page == 2, (page.total, page.total_pages, page.next_page)

# Fetch by full path and add the user as a Developer.
project = gl.projects.get("root/py-project-07")
assert project.path_with_namespace == "root/py-project-07"
member = project.members.create({"user_id": user.id, "access_level": gitlab.const.AccessLevel.DEVELOPER})
assert member.access_level == 30
assert any(m.username == "pyuser" for m in project.members.list(get_all=True))
seen = as_user.projects.get(project.id)
assert seen.permissions["project_access"]["access_level"] == 30

# Errors come back as python-gitlab's exceptions with GitLab's codes.
try:
    as_user.projects.get("root/py-project-08")
    raise AssertionError("expected 404")
except gitlab.exceptions.GitlabGetError as e:
    assert e.response_code == 404, e.response_code

project.delete()
try:
    gl.projects.get(project.id)
    raise AssertionError("expected 404 after delete")
except gitlab.exceptions.GitlabGetError as e:
    assert e.response_code == 404

print("python-gitlab foundation scenario: ok")
sys.exit(0)
