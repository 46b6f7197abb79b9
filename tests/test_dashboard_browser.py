"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real
`circus run`: log in, set up a project and a jobset through the forms, trigger an
evaluation, watch a build's log grow and its status turn final without a reload, open
every page, and check that a read-only user sees no write buttons and is refused anyway.

Each page is saved as a screenshot under OUTPUT_DIR/screenshots for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.helpers.builders import builder
from tests.helpers.e2e import ADMIN_KEY, NONCE, Circus, wait_for
from tests.helpers.repos import commit_files, git
from tests.helpers.suite import OUTPUT_DIR, host_system

pytestmark = pytest.mark.slow

SCREENSHOTS = OUTPUT_DIR / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ADMIN_PASSWORD = "dashboard admin 1"
READER_PASSWORD = "dashboard reader 1"

# A job that logs a line a second (with colours) so the page can watch it grow.
FLAKE = """{
  outputs = { self }: let
    mk = name: script: builtins.derivation {
      inherit name; system = "@SYSTEM@"; nonce = "@NONCE@";
      builder = "/bin/sh"; args = [ "-c" script ];
    };
  in {
    hydraJobs = {
      hello = mk "hello-1.0" ''
        echo "hello from the build"
        /bin/mkdir -p $out
      '';
      ticker = mk "ticker-1.0" ''
        for i in 1 2 3 4 5 6 7 8; do
          printf '\\033[32mtick %s\\033[0m <ok>\\n' "$i"
          /bin/sleep 1
        done
        echo "ticker finished"
        /bin/mkdir -p $out
      '';
    };
  };
}
"""


@pytest.fixture
def circus(tmp_path: Path, database_url: str) -> Iterator[Circus]:
    server = Circus(tmp_path, database_url, "server,evaluator,runner", "all",
                    settings={"CIRCUS_SERVER__ALLOWED_URL_SCHEMES": '["file", "https"]'}).start()
    for name, password, role in (("ada", ADMIN_PASSWORD, "admin"),
                                 ("rory", READER_PASSWORD, "read-only")):
        server.post("/api/v1/users", {"username": name, "password": password, "role": role})
    yield server
    server.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "webdemo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    text = FLAKE.replace("@SYSTEM@", host_system()).replace("@NONCE@", NONCE + "-dashboard")
    commit_files(repo, {"flake.nix": text}, "first")
    return repo


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    expect(page.locator(".whoami")).to_contain_text(username)


def _builds(circus: Circus, jobset_id: int) -> dict[str, dict]:
    items = circus.get(f"/api/v1/builds?jobset_id={jobset_id}&limit=50")["items"]
    return {b["job"]: b for b in items}


def test_dashboard_in_a_browser(circus: Circus, browser: Browser, tmp_path: Path) -> None:
    base = circus.url
    repo = _repo(tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(base + "/")
    shot(page, "00-home-visitor")
    log_in(page, base, "ada", ADMIN_PASSWORD)
    shot(page, "01-home-logged-in")

    # The wizard: repository, then project and jobset.
    page.goto(base + "/projects/new")
    page.fill("#wizard-step1 input[name=repository_url]", f"file://{repo}")
    shot(page, "02-wizard-step1")
    page.click("#wizard-step1 button[type=submit]")
    expect(page.locator(".probe")).to_contain_text("has a flake.nix")
    page.fill("#wizard-step2 input[name=name]", "webdemo")
    page.fill("#wizard-step2 input[name=description]", "A project made in the browser")
    page.fill("#wizard-step2 input[name=check_interval]", "0")
    shot(page, "03-wizard-step2")
    page.click("#wizard-step2 button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("Project webdemo set up")
    expect(page.locator("#jobset-list")).to_contain_text("main")

    # A second jobset through the project page's form.
    page.fill("#add-jobset input[name=name]", "nightly")
    page.fill("#add-jobset input[name=check_interval]", "0")
    page.click("#add-jobset button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("Jobset nightly created")
    project = circus.get("/api/v1/projects/webdemo")
    jobsets = {j["name"]: j for j in circus.get(f"/api/v1/projects/{project['id']}/jobsets")
               ["items"]}
    assert set(jobsets) == {"main", "nightly"}
    assert jobsets["nightly"]["check_interval"] == 0

    # A second tab on the home page, to see it update by itself.
    home = browser.new_page(viewport={"width": 1280, "height": 900})
    home.goto(base + "/")
    home.evaluate("window.__kept = 'no reload'")

    page.goto(base + "/jobset/webdemo/main")
    page.click("#trigger-form button")
    expect(page.locator(".notice")).to_contain_text("Evaluation requested")
    jobset_id = jobsets["main"]["id"]
    ticker = wait_for(lambda: _builds(circus, jobset_id).get("ticker", {}).get("state")
                      in ("running", "finished") and _builds(circus, jobset_id)["ticker"],
                      120, "the ticker build to start")

    # The build page, opened while the build runs: lines arrive, then the status turns.
    page.goto(f"{base}/build/{ticker['id']}")
    page.evaluate("window.__kept = 'no reload'")
    assert page.locator("#log").get_attribute("data-state") == "running", \
        "the page was opened after the build finished: nothing was live"
    log = page.locator("#log")
    expect(log).to_contain_text("tick 3", timeout=30_000)
    assert "ticker finished" not in log.inner_text()
    expect(page.locator("#build-status")).to_contain_text("running")
    shot(page, "10-build-running")
    expect(log).to_contain_text("ticker finished", timeout=60_000)
    expect(page.locator("#build-status")).to_contain_text("succeeded", timeout=30_000)
    assert page.evaluate("window.__kept") == "no reload"
    # Colours are spans, markup in the log is text.
    assert page.locator("#log span.ansi-fg-2").count() >= 8
    assert "<ok>" in log.inner_text()
    expect(page.locator("#build-actions")).to_contain_text("Restart")
    shot(page, "11-build-finished")

    # The home tab caught up without a reload.
    expect(home.locator("#home-recent")).to_contain_text("ticker", timeout=30_000)
    assert home.evaluate("window.__kept") == "no reload"
    shot(home, "12-home-live")
    home.close()

    # Star the job, post news, make an API key, a channel to look at.
    page.click("#build-actions button[title='Star this job']")
    expect(page.locator(".notice")).to_contain_text("Starred ticker")
    evaluation = circus.get(f"/api/v1/evaluations?jobset_id={jobset_id}")["items"][0]
    wait_for(lambda: all(b["state"] == "finished" for b in _builds(circus, jobset_id).values()),
             120, "every build to finish")
    channel = circus.post("/api/v1/channels", {"name": "webdemo-stable",
                                               "jobset_id": jobset_id,
                                               "project_id": project["id"]})
    page.goto(base + "/news")
    page.fill("#news-form input[name=title]", "Dashboard is live")
    page.fill("#news-form textarea[name=content]", "Written <b>in a browser</b>.")
    page.click("#news-form button[type=submit]")
    expect(page.locator("#news-list")).to_contain_text("Written <b>in a browser</b>.")
    # A builder to show on the admin page; disabled, so no runner sends it builds.
    circus.post("/api/v1/admin/builders", builder("browser-builder", enabled=False))
    page.goto(base + "/admin")
    page.fill("#create-key input[name=name]", "from-browser")
    page.click("#create-key button[type=submit]")
    expect(page.locator("#new-key")).to_contain_text("circus_")

    pages = {
        "20-home": ("/", "#home-recent", "ticker"),
        "21-projects": ("/projects", "#project-list", "webdemo"),
        "22-project": ("/project/webdemo", "#jobset-list", "nightly"),
        "23-notifications": ("/project/webdemo/notifications", "#notifiers", "Email"),
        "24-jobset": ("/jobset/webdemo/main", "#eval-history", evaluation["commit_hash"][:12]),
        "25-evaluations": ("/evaluations", "#evaluation-list", "webdemo"),
        "26-evaluation": (f"/evaluation/{evaluation['id']}", "#eval-builds", "ticker"),
        "27-builds": ("/builds", "#build-list", "hello"),
        "28-builds-filtered": ("/builds?job=hello", "#build-list", "hello"),
        "29-build": (f"/build/{ticker['id']}", "#log", "ticker finished"),
        "30-queue": ("/queue", "#queued", "The queue is empty"),
        "31-channels": ("/channels", "#channel-list", "webdemo-stable"),
        "32-channel": (f"/channel/{channel['id']}", "main", "nix-channel --add"),
        "33-news": ("/news", "#news-list", "Dashboard is live"),
        "34-admin": ("/admin", "#api-keys", "from-browser"),
        "35-admin-builders": ("/admin", "#remote-builders", "ssh-ng://nix@browser-builder"),
        "36-users": ("/users", "#user-list", "rory"),
        "37-starred": ("/starred", "#starred-list", "ticker"),
        "38-metrics": ("/metrics?period=day", "#plot-counts svg", "Builds finished"),
        "39-wizard": ("/projects/new", "#wizard-step1", "Repository URL"),
        "40-logout": ("/logout", "main", "Logged in as"),
    }
    for name, (path, selector, text) in pages.items():
        page.goto(base + path)
        expect(page.locator(selector).first).to_contain_text(text)
        shot(page, name)
    page.goto(base + "/metrics?period=day")
    assert page.locator("#plot-counts svg rect.series-succeeded").count() >= 1

    # A read-only user: no write buttons, and the server refuses the write anyway.
    reader = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    reader.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(reader, base, "rory", READER_PASSWORD)
    for path in ("/", "/projects", "/project/webdemo", "/jobset/webdemo/main",
                 f"/build/{ticker['id']}", "/queue", "/news", "/projects/new"):
        reader.goto(base + path)
        # Starring a job is the user's own list, not a write to the CI: it stays.
        forms = reader.locator("main form[method=post]:not([action$='/star'])")
        assert forms.count() == 0, (path, forms.first.get_attribute("action"))
        for label in ("Evaluate now", "Restart", "Cancel", "Add jobset", "Create project",
                      "Post", "Bump"):
            assert reader.get_by_role("button", name=label).count() == 0, (path, label)
    reader.goto(f"{base}/build/{ticker['id']}")
    shot(reader, "50-read-only-build")
    reader.goto(base + "/admin")
    expect(reader.locator("main")).to_contain_text("Not allowed")
    shot(reader, "51-read-only-admin-refused")
    reader.goto(base + "/jobset/webdemo/main")
    status = reader.evaluate(
        """async (id) => {
             const token = document.querySelector('.account input[name=csrf_token]').value;
             const body = new URLSearchParams({csrf_token: token});
             const r = await fetch('/dashboard/jobset/' + id + '/trigger',
                                   {method: 'POST', body, redirect: 'manual'});
             return r.status;
           }""", jobset_id)
    assert status == 403
    assert circus.get(f"/api/v1/projects/{project['id']}/jobsets/{jobset_id}")[
        "trigger_time"] is None
    assert not errors, errors
    assert ADMIN_KEY not in page.content()
