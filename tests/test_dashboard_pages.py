"""The dashboard in process: every page renders for a visitor, a read-only user and an
admin; forms write and redirect; the server refuses writes a role does not allow; the log
page opens a 100 000-line log at its tail; ANSI colours and SVG plots render safely."""

from __future__ import annotations

import asyncio
import re
import time

import asyncpg
from aiohttp.test_utils import TestClient

from circus.server.dashboard import ansi, svg
from circus.server.dashboard.build import tail_start
from circus.store import logs
from tests.helpers.api import (
    ADMIN_KEY,
    READONLY_KEY,
    insert_build,
    seed_jobset,
    seed_project,
)
from tests.helpers.dashboard import CSRF, login, same_origin


async def _seed(client: TestClient, pool: asyncpg.Pool) -> dict[str, int]:
    project = await seed_project(client, "demo")
    jobset = await seed_jobset(client, project["id"], "main")
    evaluation = await pool.fetchval(
        "INSERT INTO evaluations (jobset_id, status, commit_hash, inputs_hash, nr_jobs,"
        " nr_builds, finished_at) VALUES ($1, 'succeeded', 'abc123def456', 'x', 2, 2, now())"
        " RETURNING id", jobset["id"])
    done = await insert_build(pool, jobset["id"], "hello", state="finished", buildstatus=0,
                              started_at=None)
    await pool.execute("UPDATE builds SET started_at = now() - interval '42 seconds',"
                       " finished_at = now() WHERE id = $1", done)
    queued = await insert_build(pool, jobset["id"], "slow")
    for build in (done, queued):
        await pool.execute("INSERT INTO evaluation_builds (evaluation_id, build_id)"
                           " VALUES ($1, $2)", evaluation, build)
    channel = await pool.fetchval(
        "INSERT INTO channels (project_id, jobset_id, name, current_evaluation_id)"
        " VALUES ($1, $2, 'demo-stable', $3) RETURNING id", project["id"], jobset["id"],
        evaluation)
    await pool.execute("INSERT INTO news (title, content, author) VALUES"
                       " ('Welcome', 'first <b>news</b>', 'admin')")
    return {"project": project["id"], "jobset": jobset["id"], "eval": evaluation,
            "done": done, "queued": queued, "channel": channel}


PAGES = {
    "/": "Overview", "/login": "Log in", "/projects": "demo", "/projects/new": "Set up",
    "/project/demo": "Jobsets", "/project/demo/notifications": "Notifier",
    "/jobset/demo/main": "Evaluations", "/evaluations": "abc123def456",
    "/builds": "hello", "/queue": "slow", "/channels": "demo-stable", "/news": "Welcome",
    "/metrics": "Builds finished", "/starred": "Starred", "/logout": "Log out",
}


async def test_every_page_renders_for_a_visitor(client: TestClient, pool: asyncpg.Pool) -> None:
    ids = await _seed(client, pool)
    pages = {**PAGES, f"/evaluation/{ids['eval']}": "Evaluation",
             f"/eval/{ids['eval']}": "Evaluation", f"/build/{ids['done']}": "hello",
             f"/build/{ids['queued']}": "has not started", f"/channel/{ids['channel']}":
             "nix-channel --add", f"/project/{ids['project']}": "Jobsets"}
    for path, needle in pages.items():
        resp = await client.get(path, headers={"Accept": "text/html"})
        body = await resp.text()
        assert resp.status == 200, (path, resp.status, body[:500])
        assert resp.content_type == "text/html", path
        assert needle in body, (path, needle)
        # A visitor sees no write forms anywhere.
        assert 'name="csrf_token"' not in body, path
    # News content is escaped, never raw HTML.
    assert "first &lt;b&gt;news&lt;/b&gt;" in await (await client.get("/news")).text()


async def test_admin_pages_refuse_visitors_and_read_only(client: TestClient,
                                                         pool: asyncpg.Pool) -> None:
    for path in ("/admin", "/users"):
        resp = await client.get(path)
        assert resp.status == 401 and "Please log in" in await resp.text()
    await login(client, READONLY_KEY)
    for path in ("/admin", "/users"):
        resp = await client.get(path)
        assert resp.status == 403 and "may not administer" in await resp.text()


async def test_missing_things_are_html_404s(client: TestClient) -> None:
    for path in ("/build/999", "/project/nope", "/jobset/a/b", "/evaluation/5", "/channel/9",
                 "/eval/77"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert "Not found" in await resp.text()


async def test_filters_and_pages(client: TestClient, pool: asyncpg.Pool) -> None:
    ids = await _seed(client, pool)
    for i in range(60):
        await insert_build(pool, ids["jobset"], f"job{i:02}", state="finished", buildstatus=1)
    body = await (await client.get("/builds?status=failed")).text()
    assert "1\u201350 of 60" in body and "job59" in body and "job00" not in body
    assert "hello" not in body
    body = await (await client.get("/builds?status=failed&offset=50")).text()
    assert "51\u201360 of 60" in body and "job00" in body
    body = await (await client.get("/builds?job=hello")).text()
    assert "No builds match" not in body and "job01" not in body
    resp = await client.get("/builds?status=bogus")
    assert resp.status == 400 and "unknown status" in await resp.text()
    body = await (await client.get("/projects?q=zzz")).text()
    assert "No projects match" in body
    body = await (await client.get(f"/evaluation/{ids['eval']}?status=queued")).text()
    assert "slow" in body and '/build/' + str(ids["done"]) + '"' not in body


async def test_admin_forms_write_and_read_only_is_refused(client: TestClient,
                                                           pool: asyncpg.Pool) -> None:
    ids = await _seed(client, pool)
    token = await login(client, ADMIN_KEY)
    page = await (await client.get(f"/build/{ids['queued']}")).text()
    assert "Cancel" in page and "Bump to front" in page
    resp = await client.post("/dashboard/projects", data={
        "csrf_token": token, "name": "second", "repository_url": "https://example.com/x"},
        allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/project/second")
    resp = await client.post("/dashboard/project/second/jobsets", data={
        "csrf_token": token, "name": "nightly", "nix_expression": "hydraJobs",
        "check_interval": "0", "flake": "on"}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    row = await pool.fetchrow("SELECT flake, check_interval FROM jobsets WHERE name = 'nightly'")
    assert row["flake"] is True and row["check_interval"] == 0
    resp = await client.post(f"/dashboard/jobset/{ids['jobset']}/trigger",
                             data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    assert await pool.fetchval("SELECT trigger_time IS NOT NULL FROM jobsets WHERE id = $1",
                               ids["jobset"])
    resp = await client.post(f"/dashboard/build/{ids['queued']}/bump",
                             data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    resp = await client.post(f"/dashboard/build/{ids['done']}/cancel",
                             data={"csrf_token": token})
    assert resp.status == 409 and "only a queued or running build" in await resp.text()
    resp = await client.post("/dashboard/api-keys", data={"csrf_token": token,
                                                          "name": "ci", "role": "read-only"})
    body = await resp.text()
    assert resp.status == 200 and 'id="new-key"' in body
    # Without the CSRF token the same write is refused.
    resp = await client.post(f"/dashboard/build/{ids['queued']}/cancel", data={})
    assert resp.status == 403 and "CSRF" in await resp.text()
    # The wizard: step 2 then create, project and jobset in one go.
    resp = await client.post("/dashboard/projects/setup", data={
        "csrf_token": token, "name": "wiz", "repository_url": "https://example.com/wiz",
        "template": "flake", "check_interval": "0"}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    assert await pool.fetchval("SELECT count(*) FROM jobsets j JOIN projects p"
                               " ON p.id = j.project_id WHERE p.name = 'wiz'") == 1

    client.session.cookie_jar.clear()
    ro_token = await login(client, READONLY_KEY)
    page = await (await client.get(f"/build/{ids['queued']}")).text()
    assert "Cancel" not in page and "Bump" not in page
    page = await (await client.get("/project/demo")).text()
    assert "Add a jobset" not in page
    resp = await client.post(f"/dashboard/build/{ids['queued']}/cancel",
                             data={"csrf_token": ro_token})
    assert resp.status == 403 and "may not cancel build" in await resp.text()
    assert await pool.fetchval("SELECT state FROM builds WHERE id = $1",
                               ids["queued"]) == "queued"


async def test_login_with_a_password_and_logout(client: TestClient, pool: asyncpg.Pool) -> None:
    from circus.services import passwords
    await pool.execute("INSERT INTO users (username, password_hash, role) VALUES"
                       " ('alice', $1, 'admin')", passwords.hash_password("correct horse 1"))
    resp = await client.post("/dashboard/login", data={"username": "alice",
                                                       "password": "wrong"},
                             headers=same_origin(client))
    assert resp.status == 401 and "invalid username or password" in await resp.text()
    resp = await client.post("/dashboard/login", data={
        "username": "alice", "password": "correct horse 1", "next": "https://evil.example/"},
        allow_redirects=False, headers=same_origin(client))
    assert resp.status == 302 and resp.headers["Location"] == "/"
    body = await (await client.get("/users")).text()
    assert "alice" in body
    token = CSRF.search(body).group(1)
    resp = await client.post("/dashboard/logout", data={"csrf_token": token},
                             allow_redirects=False)
    assert resp.status == 303
    assert (await client.get("/users")).status == 401


async def test_a_huge_log_opens_at_its_tail(client: TestClient, pool: asyncpg.Pool) -> None:
    ids = await _seed(client, pool)
    build = await insert_build(pool, ids["jobset"], "big", state="running")
    lines = [f"line {i} \x1b[31mred\x1b[0m <tag>\n" for i in range(100_000)]
    async with pool.acquire() as conn:
        for seq in range(10):
            await logs.append_chunk(conn, build, seq, "".join(lines[seq * 10_000:
                                                                       (seq + 1) * 10_000]))
    started = time.monotonic()
    resp = await client.get(f"/build/{build}")
    body = await resp.text()
    elapsed = time.monotonic() - started
    assert resp.status == 200
    assert "line 99999 " in body and "line 98999 " not in body and "line 99000 " in body
    assert '<span class="ansi-fg-1">red</span> &lt;tag&gt;' in body
    assert "Load earlier lines" in body
    assert len(body) < 500_000, "only the tail is rendered"
    print(f"build page with a 100 000-line log: {elapsed * 1000:.0f} ms")
    end = int(re.search(r'data-end="(\d+)"', body).group(1))
    more = await (await client.get(f"/dashboard/build/{build}/log?end={end}&lines=10")).json()
    assert more["html"].count("\n") == 10 and "line 98999 " in more["html"]


async def test_live_log_stream_sends_html_then_done(client: TestClient,
                                                    pool: asyncpg.Pool) -> None:
    ids = await _seed(client, pool)
    build = await insert_build(pool, ids["jobset"], "live", state="running")
    async with pool.acquire() as conn:
        await logs.append_chunk(conn, build, 0, "first \x1b[1mbold\x1b[0m\n")
    resp = await client.get(f"/dashboard/build/{build}/log/live?offset=0")
    assert resp.status == 200
    seen = ""

    async def read_until(needle: str) -> None:
        nonlocal seen
        while needle not in seen:
            raw = await asyncio.wait_for(resp.content.readline(), 20)
            assert raw, "stream ended"
            seen += raw.decode()

    await read_until('<span class=\\"ansi-bold\\">bold</span>')
    async with pool.acquire() as conn:
        await logs.append_chunk(conn, build, 1, "second <line>\n")
    await read_until("second &lt;line&gt;")
    async with pool.acquire() as conn, conn.transaction():
        await logs.fold(conn, build)
        await conn.execute("UPDATE builds SET state = 'finished', buildstatus = 1,"
                           " finished_at = now() WHERE id = $1", build)
        await conn.execute("SELECT pg_notify('circus_build_changed', $1::text)", str(build))
    await read_until("event: done")
    await read_until('"status": "failed"')
    resp.close()


async def test_events_stream_tells_of_build_changes(client: TestClient,
                                                    pool: asyncpg.Pool) -> None:
    resp = await client.get("/dashboard/events", headers={"Accept": "text/event-stream"})
    assert (await asyncio.wait_for(resp.content.readline(), 10)).startswith(b"event: ready")
    await pool.execute("SELECT pg_notify('circus_build_changed', '42')")
    seen = b""
    while b'"builds": [42]' not in seen:
        seen += await asyncio.wait_for(resp.content.readline(), 10)
    resp.close()


def test_ansi_colours_and_escaping() -> None:
    assert ansi.to_html("plain <b>&") == "plain &lt;b&gt;&amp;"
    assert ansi.to_html("\x1b[1;32mok\x1b[0m done") == (
        '<span class="ansi-fg-2 ansi-bold">ok</span> done')
    assert ansi.to_html("\x1b[38;5;196mx\x1b[39m") == '<span style="color:#ff0000">x</span>'
    assert ansi.to_html("\x1b[38;2;1;2;3mx") == '<span style="color:#010203">x</span>'
    # Cursor moves and titles vanish; colour carries across pieces of a live log.
    assert ansi.to_html("a\x1b[2Kb\x1b]0;title\x07c") == "abc"
    conv = ansi.Converter()
    assert conv.feed("\x1b[31mred") == '<span class="ansi-fg-1">red</span>'
    assert conv.feed(" still\x1b[m") == '<span class="ansi-fg-1"> still</span>'
    assert conv.feed("x") == "x"


def test_tail_start_counts_lines() -> None:
    text = "a\nb\nc\n"
    assert text[tail_start(text, len(text), 2):] == "b\nc\n"
    assert tail_start(text, len(text), 10) == 0
    assert text[tail_start(text, 4, 1):4] == "b\n"


def test_svg_plots_are_valid_and_escaped() -> None:
    import xml.etree.ElementTree as ET
    bars = svg.stacked_bars("Builds <x>", [svg.Bucket("a&b", {"succeeded": 3, "failed": 1}),
                                           svg.Bucket("c", {"succeeded": 0, "failed": 7})],
                            ("succeeded", "failed"))
    ET.fromstring(bars)
    assert "Builds &lt;x&gt;" in bars and bars.count("<rect") >= 3
    line = svg.lines("Durations", [svg.Bucket("d", {"p50": 2.0, "p95": None})], ("p50", "p95"),
                     unit="s")
    ET.fromstring(line)
    assert "<polyline" in line
    assert "no data" in svg.lines("Empty", [], ("p50",))
