"""A team member serves themselves in Pipewright's web UI, in headless Chromium (see
self_service.rs): an administrator creates their account; they sign in, make a personal access
token and use it with python-gitlab and `git clone`, create a project with a README, add a
colleague as Developer, protect main so the colleague's push is refused, push a CI config and
see the commit's pipeline pass.

Environment: PIPEWRIGHT_URL, PIPEWRIGHT_ROOT_PASSWORD, PIPEWRIGHT_PASSWORD (the new user's),
PIPEWRIGHT_COLLEAGUE_TOKEN (frank's, a Developer to be), PIPEWRIGHT_CHROMIUM,
PIPEWRIGHT_CHROMEDRIVER, PIPEWRIGHT_SCREENSHOTS, PIPEWRIGHT_BROWSER_PROFILE, PIPEWRIGHT_WORK
(a scratch directory).
"""

import os
import subprocess
import sys
from urllib.parse import urlsplit

import gitlab
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from browser import BASE, browser, click, screenshot, settled, wait

PASSWORD = os.environ["PIPEWRIGHT_PASSWORD"]
WORK = os.environ["PIPEWRIGHT_WORK"]
HOST = urlsplit(BASE).netloc


def sign_in(driver, username, password):
    driver.delete_all_cookies()
    driver.get(f"{BASE}/users/sign_in")
    driver.find_element(By.ID, "user_login").send_keys(username)
    driver.find_element(By.ID, "user_password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=sign-in-button]").click()
    wait(driver, EC.url_to_be(f"{BASE}/"), what=f"{username}'s dashboard")


def notice(driver, text):
    wait(driver, EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), text), what=repr(text))


def git(*args, cwd=WORK, check=True):
    env = dict(os.environ, HOME=WORK, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    out = subprocess.run(
        ["git", "-c", "user.name=Erin", "-c", "user.email=erin@example.com", *args],
        cwd=cwd, env=env, capture_output=True, text=True,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"git {args} failed:\n{out.stdout}{out.stderr}")
    return out


def main():
    driver = browser()
    try:
        # An administrator creates erin's account on the admin page.
        sign_in(driver, "root", os.environ["PIPEWRIGHT_ROOT_PASSWORD"])
        driver.get(f"{BASE}/admin")
        for field, value in [("new_name", "Erin"), ("new_username", "erin"),
                             ("new_email", "erin@example.com"), ("new_password", PASSWORD)]:
            driver.find_element(By.ID, field).send_keys(value)
        driver.find_element(By.XPATH, "//button[normalize-space()='Create user']").click()
        notice(driver, "User was created.")

        # erin signs in and makes a personal access token from her settings.
        sign_in(driver, "erin", PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "a.who").click()
        driver.find_element(By.LINK_TEXT, "Access tokens").click()
        driver.find_element(By.ID, "token_name").send_keys("laptop")
        for scope in ["api", "write_repository"]:
            driver.find_element(By.CSS_SELECTOR, f"input[name='scopes[]'][value='{scope}']").click()
        driver.find_element(By.XPATH, "//button[normalize-space()='Create token']").click()
        field = wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=created-token]")),
                     what="the new token")
        token = field.get_attribute("value")
        assert token.startswith("glpat-"), token
        screenshot(driver, "user-settings-tokens.png", height=1100)

        # The token works with python-gitlab, as erin.
        gl = gitlab.Gitlab(BASE, private_token=token)
        gl.auth()
        assert gl.user.username == "erin", gl.user.username

        # She creates a project with a README: the path follows the name.
        driver.find_element(By.LINK_TEXT, "New project").click()
        driver.find_element(By.ID, "project_name").send_keys("Story")
        assert driver.find_element(By.ID, "project_path").get_attribute("value") == "story"
        driver.find_element(By.ID, "project_description").send_keys("Our team's first project")
        screenshot(driver, "new-project.png")
        driver.find_element(By.XPATH, "//button[normalize-space()='Create project']").click()
        notice(driver, "Project 'Story' was successfully created.")
        project = gl.projects.get("erin/story")
        assert project.default_branch == "main"

        # …and clones it at once with the token.
        remote = f"http://erin:{token}@{HOST}/erin/story.git"
        git("clone", "-q", remote, "story")
        assert open(os.path.join(WORK, "story", "README.md")).read().startswith("# Story")

        # She adds frank as a Developer.
        driver.find_element(By.LINK_TEXT, "Members").click()
        driver.find_element(By.ID, "member_username").send_keys("frank")
        driver.find_element(By.XPATH, "//button[normalize-space()='Invite']").click()
        notice(driver, "frank was added to the project.")
        assert "@frank" in driver.find_element(By.CSS_SELECTOR, "[data-testid=members-table]").text
        members = gl.projects.get("erin/story").members.list(get_all=True)
        assert [m.access_level for m in members if m.username == "frank"] == [30], members
        screenshot(driver, "project-members.png")

        # …and protects main: Maintainers only.
        driver.find_element(By.LINK_TEXT, "Repository").click()
        driver.find_element(By.ID, "protected_branch_name").send_keys("main")
        driver.find_element(By.XPATH, "//button[normalize-space()='Protect']").click()
        notice(driver, "Branch main was protected.")
        screenshot(driver, "settings-repository.png")

        # frank's push to main is refused.
        frank = os.environ["PIPEWRIGHT_COLLEAGUE_TOKEN"]
        git("clone", "-q", f"http://frank:{frank}@{HOST}/erin/story.git", "frank")
        frank_dir = os.path.join(WORK, "frank")
        with open(os.path.join(frank_dir, "frank.txt"), "w") as f:
            f.write("frank was here\n")
        git("add", ".", cwd=frank_dir)
        git("commit", "-q", "-m", "frank's change", cwd=frank_dir)
        out = git("push", "-q", "origin", "main", cwd=frank_dir, check=False)
        assert out.returncode != 0 and "not allowed to push" in out.stderr, out.stderr

        # erin pushes a CI config and sees the commit's pipeline pass.
        story = os.path.join(WORK, "story")
        with open(os.path.join(story, ".gitlab-ci.yml"), "w") as f:
            f.write("test:\n  script: echo hello from the story\n")
        git("add", ".", cwd=story)
        git("commit", "-q", "-m", "Add CI", cwd=story)
        git("push", "-q", "origin", "main", cwd=story)
        sha = git("rev-parse", "HEAD", cwd=story).stdout.strip()
        driver.find_element(By.LINK_TEXT, "Pipelines").click()
        row = "[data-testid=pipeline-row]"
        wait(driver, lambda d: sha[:8] in d.page_source or d.refresh(), timeout=60, what="the commit's pipeline")
        click(driver, By.CSS_SELECTOR, f"{row} a[href*='/-/pipelines/']", "the pipeline link")
        wait(driver, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=pipeline-status]"), "passed"),
             timeout=90, what="the pipeline to pass")
        settled(driver, "pipeline-live")
        assert sha[:8] in driver.page_source
        pipeline_url = driver.current_url

        # She browses the files and the commits, and the commit leads to its pipeline.
        driver.find_element(By.LINK_TEXT, "Code").click()
        tree = driver.find_element(By.CSS_SELECTOR, "[data-testid=tree]").text
        assert "README.md" in tree and ".gitlab-ci.yml" in tree, tree
        driver.find_element(By.LINK_TEXT, "README.md").click()
        assert "# Story" in driver.page_source, driver.page_source
        driver.find_element(By.LINK_TEXT, "Commits").click()
        row = f"[data-testid=commit-row][data-sha='{sha}']"
        assert "Add CI" in driver.find_element(By.CSS_SELECTOR, row).text
        click(driver, By.CSS_SELECTOR, f"{row} a[href*='/-/pipelines/']", "the commit's pipeline")
        assert driver.current_url == pipeline_url, (driver.current_url, pipeline_url)
        print("self-service story passed")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
    sys.exit(0)
