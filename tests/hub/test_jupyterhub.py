"""The course on a real JupyterHub (`make hub-test`): the hub (pip's jupyterhub, npm's configurable-http-proxy, both
pinned) on the loopback, a dummy authenticator and a local process spawner; the student release (lessons 1–2, made by
tools.release) in a git repository of its own, handed out by the nbgitpuller link of docs/instructor-guide.md.

Two students log in through Chromium (Playwright) and follow the link: each gets the release in their home, and no
solution. One runs lesson 1 to exercise 1.1, sees ExerciseNotDone (a screenshot of her lab goes to
build/hub-screenshots/) and hands the notebook in by saving it into `handin/`, the hub's hand-in folder; the grader
grades that folder (in its sandbox when bubblewrap is installed) and writes her lesson 1 gradebook.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser import chromium, free_port, serving
from tools import release
from tools.grade import main as grade

REPO_ROOT = Path(__file__).resolve().parents[2]
PROXY = REPO_ROOT / "build" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
SCREENSHOTS = REPO_ROOT / "build" / "hub-screenshots"
STUDENTS = ("ada", "bob")
PASSWORD = "course-hub-test"
LESSON_1 = "01_latent_variable_models.ipynb"
IGNORED_CONSOLE = ("news", "update", "favicon", "ERR_INTERNET_DISCONNECTED", "ERR_NAME_NOT_RESOLVED")


def _student_repository(root: Path) -> Path:
    """The release of lessons 1–2 committed to a git repository of its own: what an instructor pushes for week 1."""
    folder, _ = release.write_release(root / "dist", lessons=[1, 2])
    repository = root / "repos" / release.RELEASE_NAME
    shutil.copytree(folder, repository)
    git = ["git", "-c", "user.name=instructor", "-c", "user.email=instructor@example.org", "-C", str(repository)]
    for command in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "week 1"]):
        subprocess.run(git + command, check=True)
    return repository


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    assert PROXY.exists(), f"{PROXY} is missing: `make hub-test` installs configurable-http-proxy with npm"
    root = tmp_path_factory.mktemp("hub")
    repository = _student_repository(root)
    handin = root / "handin"
    for student in STUDENTS:
        (handin / student).mkdir(parents=True)
        home = root / "home" / student
        home.mkdir(parents=True)
        (home / "handin").symlink_to(handin / student)  # the hub's hand-in folder, one per student
    port = free_port()
    config = root / "jupyterhub_config.py"
    config.write_text(textwrap.dedent(f"""
        c.JupyterHub.ip = "127.0.0.1"
        c.JupyterHub.port = {port}
        c.JupyterHub.hub_ip = "127.0.0.1"
        c.JupyterHub.hub_port = {free_port()}
        c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
        c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
        c.JupyterHub.db_url = "sqlite:///{root}/jupyterhub.sqlite"
        c.JupyterHub.cookie_secret_file = "{root}/cookie_secret"
        c.ConfigurableHTTPProxy.pid_file = "{root}/proxy.pid"
        c.JupyterHub.authenticator_class = "dummy"
        c.DummyAuthenticator.password = {PASSWORD!r}
        c.Authenticator.allowed_users = set({list(STUDENTS)!r})
        c.JupyterHub.spawner_class = "simple"
        c.SimpleLocalProcessSpawner.home_dir_template = "{root}/home/{{username}}"
        c.Spawner.cmd = [{sys.executable!r}, "-m", "jupyterhub.singleuser"]
        c.Spawner.args = ["--allow-root"]
        c.Spawner.default_url = "/lab"
        c.Spawner.start_timeout = 120
        c.Spawner.http_timeout = 120
        # The image's environment (docs/instructor-guide.md): utils from the student's release, spin count small.
        # (A value may be a function of the spawner: environment values are not templates.)
        c.Spawner.environment = {{
            "GOMP_SPINCOUNT": "1000",
            "PYTHONPATH": lambda spawner: f"{root}/home/{{spawner.user.name}}/{release.RELEASE_NAME}"}}
    """))
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with serving([sys.executable, "-m", "jupyterhub", "-f", str(config)], f"{url}/hub/health", "JupyterHub", 90,
                 cwd=root, env=env):
        yield {"url": url, "root": root, "repository": repository, "handin": handin}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium("hub-test") as launched:
        yield launched


def _log_in(browser: Browser, url: str, student: str) -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda message: page.console_errors.append(  # type: ignore[attr-defined]
        f"{message.text} ({message.location.get('url', '')})")
        if message.type == "error" and not any(word in message.text for word in IGNORED_CONSOLE) else None)
    page.goto(f"{url}/hub/login")
    page.fill("input[name=username]", student)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    return context, page


def _hand_out_link(hub: dict) -> str:
    """The nbgitpuller link of docs/instructor-guide.md, to the student repository."""
    query = urllib.parse.urlencode({"repo": f"file://{hub['repository']}", "branch": "main",
                                    "urlpath": f"lab/tree/{release.RELEASE_NAME}/notebooks/{LESSON_1}"})
    return f"{hub['url']}/hub/user-redirect/git-pull?{query}"


def test_two_students_get_the_release_and_one_hands_in_lesson_1(hub: dict, browser: Browser,
                                                                tmp_path: Path) -> None:
    sessions = {student: _log_in(browser, hub["url"], student) for student in STUDENTS}
    for student, (_, page) in sessions.items():
        page.goto(_hand_out_link(hub))
        page.locator(".jp-NotebookPanel").first.wait_for(timeout=180_000)
        home = hub["root"] / "home" / student / release.RELEASE_NAME
        assert (home / "notebooks" / LESSON_1).exists(), f"{student} did not get the release"
        assert not (home / "solutions").exists() and not (home / "lessons").exists()
        handed_out = sorted(p.name for p in (home / "notebooks").glob("*.ipynb"))
        assert handed_out == [LESSON_1, "02_posterior_inference.ipynb"]

    ada = sessions["ada"][1]
    expect(ada.get_by_role("button", name="Python 3 (ipykernel) | Idle")).to_be_visible(timeout=120_000)
    decline_news = ada.get_by_role("button", name="No", exact=True)
    if decline_news.count():
        decline_news.first.click()
    ada.get_by_role("menuitem", name="Run", exact=True).click()
    ada.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    error = ada.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                        has_text="ExerciseNotDone").first
    expect(error).to_contain_text("Exercise 1.1", timeout=180_000)
    expect(error).to_contain_text("not done yet")
    expect(error).to_contain_text(f"{release.RELEASE_NAME}/utils/checks")  # the release's utils, not the course's
    error.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ada.screenshot(path=str(SCREENSHOTS / "ada-lesson-1-exercise-1.1.png"))

    # Hand in: File → Save Notebook As… into handin/ (the hub's hand-in folder in her home).
    ada.keyboard.press("Control+Shift+S")
    name_field = ada.locator(".jp-Dialog input").first
    name_field.wait_for(timeout=30_000)
    name_field.fill(f"/handin/{LESSON_1}")
    ada.locator(".jp-Dialog .jp-mod-accept").first.click()
    handed_in = hub["handin"] / "ada" / LESSON_1
    expect(ada.locator(".lm-TabBar-tab", has_text=LESSON_1).first).to_be_visible(timeout=30_000)
    ada.wait_for_timeout(2_000)
    assert handed_in.exists(), "the hand-in did not reach the hand-in folder"

    grades = tmp_path / "grades"
    flags = [] if shutil.which("bwrap") else ["--no-sandbox"]
    assert grade([str(hub["handin"]), "--out", str(grades), "--workers", "1", *flags]) == 0
    gradebook = (grades / "lesson-01" / "gradebook.csv").read_text(encoding="utf-8")
    assert "ada,ada/01_latent_variable_models.ipynb,not done" in gradebook
    # "Save Notebook As" first asks whether the new name exists: its 404 is the expected answer, not an error.
    save_as_probe = f"/user/ada/api/contents/handin/{LESSON_1}?"
    for _, page in sessions.values():
        errors = [e for e in page.console_errors if not ("404" in e and save_as_probe in e)]  # type: ignore[attr-defined]
        assert errors == []
    for context, _ in sessions.values():
        context.close()
