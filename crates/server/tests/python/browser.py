"""Drives Pipewright's web UI in headless Chromium, as a new user would (see browser.rs).

Environment: PIPEWRIGHT_URL, PIPEWRIGHT_PROJECT (path), PIPEWRIGHT_PROJECT_ID,
PIPEWRIGHT_PASSWORD (alice, bob and dave share it), PIPEWRIGHT_CHROMIUM,
PIPEWRIGHT_CHROMEDRIVER, PIPEWRIGHT_SCREENSHOTS (a directory), PIPEWRIGHT_BROWSER_PROFILE.
"""

import json
import os
import subprocess
import sys

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["PIPEWRIGHT_URL"]
PROJECT = os.environ["PIPEWRIGHT_PROJECT"]
PROJECT_ID = os.environ["PIPEWRIGHT_PROJECT_ID"]
PASSWORD = os.environ["PIPEWRIGHT_PASSWORD"]
SHOTS = os.environ["PIPEWRIGHT_SCREENSHOTS"]
TRIGGER_URL = f"{BASE}/api/v4/projects/{PROJECT_ID}/trigger/pipeline"


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ["PIPEWRIGHT_CHROMIUM"]
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1366,900",
        "--user-data-dir=" + os.environ["PIPEWRIGHT_BROWSER_PROFILE"],
    ]:
        options.add_argument(arg)
    service = Service(executable_path=os.environ["PIPEWRIGHT_CHROMEDRIVER"])
    return webdriver.Chrome(service=service, options=options)


def wait(driver, condition, timeout=30, what="condition"):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what} on {driver.current_url}:\n"
                             + driver.find_element(By.TAG_NAME, "body").text[:3000])


def click(driver, by, selector, what):
    """Clicks an element, finding it again if a live region swapped it out meanwhile."""
    def attempt(d):
        try:
            d.find_element(by, selector).click()
            return True
        except StaleElementReferenceException:
            return False
    wait(driver, attempt, what=what)


def settled(driver, element_id):
    """Waits until a live region has stopped refreshing (its final state is shown)."""
    wait(driver, lambda d: not d.execute_script(
        "const e = document.getElementById(arguments[0]); return !e || e.hasAttribute('data-live');",
        element_id), timeout=30, what=f"#{element_id} to settle")


def sign_in(driver, username):
    driver.delete_all_cookies()
    driver.get(f"{BASE}/users/sign_in")
    driver.find_element(By.ID, "user_login").send_keys(username)
    driver.find_element(By.ID, "user_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=sign-in-button]").click()
    wait(driver, EC.url_to_be(f"{BASE}/"), what=f"{username}'s dashboard")
    assert f"@{username}" in driver.page_source


def sign_out(driver):
    driver.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()
    wait(driver, EC.url_contains("/users/sign_in"), what="the sign-in page")


def trigger_row(driver, description):
    for row in driver.find_elements(By.CSS_SELECTOR, "[data-testid=trigger-row]"):
        if description in row.get_attribute("innerHTML"):
            return row
    raise AssertionError(f"no trigger row for {description!r}")


def curl_trigger(token, *extra):
    out = subprocess.run(
        ["curl", "--silent", "--globoff", "--request", "POST", "--write-out", "\n%{http_code}",
         "--form", f"token={token}", "--form", "ref=main", *extra, TRIGGER_URL],
        check=True, capture_output=True, text=True,
    ).stdout
    body, code = out.rsplit("\n", 1)
    return int(code), json.loads(body)


def screenshot(driver, name, height=None):
    if height:
        driver.set_window_size(1366, height)
    driver.save_screenshot(os.path.join(SHOTS, name))
    driver.set_window_size(1366, 900)


def main():
    driver = browser()
    try:
        settings = f"{BASE}/{PROJECT}/-/settings/ci_cd"

        # A Maintainer adds a trigger token and reads it from the table.
        sign_in(driver, "alice")
        driver.get(f"{BASE}/{PROJECT}")
        driver.find_element(By.LINK_TEXT, "CI/CD").click()
        wait(driver, EC.url_to_be(settings), what="Settings > CI/CD")
        assert "Pipeline trigger tokens" in driver.page_source
        driver.find_element(By.ID, "trigger_description").send_keys("Deploy from CI")
        driver.find_element(By.CSS_SELECTOR, "[data-testid=add-trigger]").click()
        wait(driver, EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Trigger token was created."),
             what="the creation notice")
        token = trigger_row(driver, "Deploy from CI").find_element(By.CSS_SELECTOR, "[data-testid=trigger-token]").text
        assert token.startswith("glptt-") and len(token) == 46, token
        short = token[len("glptt-"):][:4]
        screenshot(driver, "settings-ci-cd.png", height=1500)

        # Trigger the pipeline with curl, as the settings page's example shows.
        status, pipeline = curl_trigger(token, "--form", "variables[UPLOAD_TO_S3]=true")
        assert status == 201, (status, pipeline)
        pipeline_id = pipeline["id"]

        # The pipelines page labels it `triggered`.
        driver.find_element(By.LINK_TEXT, "Pipelines").click()
        row_css = f"[data-testid=pipeline-row][data-pipeline-id='{pipeline_id}']"
        label = wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, f"{row_css} [data-testid=triggered-label]")),
                     what="the pipeline's row")
        assert label.text == "triggered"

        # Open the upload job and watch its log finish (the page polls; no reloads). The
        # pipelines table and graph refresh themselves while the pipeline runs.
        click(driver, By.CSS_SELECTOR, f"{row_css} a[href$='/-/pipelines/{pipeline_id}']", "the pipeline link")
        click(driver, By.XPATH, "//a[@data-testid='job-node'][.//span[text()='upload_package']]", "the upload job")
        wait(driver, EC.text_to_be_present_in_element((By.ID, "job-log"), "uploading package to S3"),
             timeout=90, what="the upload's output in the live log")
        wait(driver, EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".job-sidebar [data-job-status]"), "passed"),
             timeout=30, what="the job to pass")
        cancel = driver.find_elements(By.XPATH, "//button[normalize-space()='Cancel']")
        assert not any(button.is_displayed() for button in cancel), "no Cancel on a finished job"
        log = driver.find_element(By.ID, "job-log").text
        assert "$ if [ -n \"${UPLOAD_TO_S3}\" ]; then make upload; fi" in log, log
        assert "Job succeeded" in log, log
        assert token not in driver.page_source

        # The sidebar refreshes itself once more when the job ends (when it finished, the runner).
        settled(driver, "job-sidebar")
        sidebar = driver.find_element(By.ID, "job-sidebar").text
        assert "Finished" in sidebar and "Runner" in sidebar, sidebar

        # The sidebar names the trigger by its 4 characters; a Maintainer may reveal values.
        assert driver.find_element(By.CSS_SELECTOR, "[data-testid=trigger-short-token]").text == short
        value = driver.find_element(By.CSS_SELECTOR, "[data-testid=trigger-variable-value]")
        assert not value.is_displayed()
        driver.find_element(By.CSS_SELECTOR, "[data-testid=reveal-values]").click()
        wait(driver, EC.visibility_of(value), what="the revealed value")
        assert value.text == "true", value.text
        screenshot(driver, "job.png", height=1000)

        # The pipeline page, finished, for the README.
        driver.get(f"{BASE}/{PROJECT}/-/pipelines/{pipeline_id}")
        wait(driver, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=pipeline-status]"), "passed"),
             timeout=60, what="the pipeline to pass")
        settled(driver, "pipeline-live")
        screenshot(driver, "pipeline.png")

        # The branch's history, each commit with its pipeline (issue 17), for the README.
        driver.get(f"{BASE}/{PROJECT}/-/commits/main")
        wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=commit-row] .ci-status")),
             what="a commit's pipeline on the commits page")
        screenshot(driver, "repository-commits.png")
        sign_out(driver)

        # Another Maintainer sees only the 4 characters.
        sign_in(driver, "bob")
        driver.get(settings)
        shown = trigger_row(driver, "Deploy from CI").find_element(By.CSS_SELECTOR, "[data-testid=trigger-token]").text
        assert shown == short, shown
        assert token not in driver.page_source
        sign_out(driver)

        # A Developer has no access to the settings.
        sign_in(driver, "dave")
        driver.get(f"{BASE}/{PROJECT}")
        assert not driver.find_elements(By.LINK_TEXT, "CI/CD")
        driver.get(settings)
        assert "404" in driver.find_element(By.TAG_NAME, "h1").text
        driver.get(f"{BASE}/{PROJECT}/-/pipelines")
        assert driver.find_elements(By.CSS_SELECTOR, "[data-testid=triggered-label]")
        sign_out(driver)

        # The owner revokes the token (confirming that it cannot be undone); triggers get 404.
        sign_in(driver, "alice")
        driver.get(settings)
        trigger_row(driver, "Deploy from CI").find_element(By.CSS_SELECTOR, "[data-testid=revoke-trigger]").click()
        alert = wait(driver, EC.alert_is_present(), what="the confirmation")
        assert "cannot be added back" in alert.text, alert.text
        alert.accept()
        wait(driver, EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Trigger token was revoked."),
             what="the revocation notice")
        assert token not in driver.page_source
        status, body = curl_trigger(token)
        assert status == 404 and body == {"message": "404 Not Found"}, (status, body)
        print("browser story passed")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
    sys.exit(0)
