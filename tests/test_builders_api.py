"""Remote builders: /api/v1/admin/builders (CRUD, who may, every check naming its field),
`[declarative] remote_builders` applied at start, the Prometheus gauges and the admin
page; the private key file a builder names is never read into any answer."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from circus.app.config import Config, ConfigError, structure
from circus.domain import bus
from circus.services import declarative
from tests.helpers.api import (
    ADMIN,
    ADMIN_KEY,
    ROLE_KEYS,
    bearer,
    insert_build,
    seed_jobset,
    seed_project,
)
from tests.helpers.builders import ECDSA, ED25519, builder
from tests.helpers.dashboard import login

URL = "/api/v1/admin/builders"


async def _create(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(URL, headers=ADMIN, json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _error(resp: Any, status: int) -> str:
    body = await resp.json()
    assert resp.status == status, body
    return str(body["error"])


async def test_create_read_update_delete(client: TestClient, pool: asyncpg.Pool) -> None:
    # The seed's example, with the host key it needs (a comment is dropped).
    made = await _create(client, {
        "name": "builder-1", "ssh_uri": "builder-1.example.org",
        "systems": ["x86_64-linux", "aarch64-linux"], "max_jobs": 4, "speed_factor": 1,
        "enabled": True, "public_host_key": f"{ED25519} root@builder-1\n"})
    assert made == {
        "id": made["id"], "name": "builder-1", "ssh_uri": "ssh-ng://builder-1.example.org",
        "systems": ["x86_64-linux", "aarch64-linux"], "max_jobs": 4, "speed_factor": 1.0,
        "supported_features": [], "mandatory_features": [], "ssh_key_file": None,
        "public_host_key": ED25519, "enabled": True, "declarative": False,
        "health": "unknown", "consecutive_failures": 0, "disabled_until": None,
        "last_error": None, "last_failure_at": None, "last_success_at": None,
        "last_probe_at": None, "psi_cpu": None, "psi_memory": None, "slots_in_use": 0,
        "created_at": made["created_at"], "updated_at": made["updated_at"]}
    one = await (await client.get(f"{URL}/{made['id']}")).json()
    assert one == made
    assert (await (await client.get(URL)).json()) == {"items": [made]}

    resp = await client.put(f"{URL}/{made['id']}", headers=ADMIN, json={
        "max_jobs": 8, "supported_features": ["kvm", "big-parallel"],
        "mandatory_features": ["benchmark"], "ssh_key_file": "/etc/circus/builder_key",
        "ssh_uri": "ssh://nix@[2001:db8::7]", "speed_factor": 2.5})
    assert resp.status == 200, await resp.text()
    updated = await resp.json()
    assert {k: updated[k] for k in ("name", "systems", "max_jobs", "supported_features",
                                    "mandatory_features", "ssh_key_file", "ssh_uri",
                                    "speed_factor", "public_host_key")} == {
        "name": "builder-1", "systems": ["x86_64-linux", "aarch64-linux"], "max_jobs": 8,
        "supported_features": ["kvm", "big-parallel"], "mandatory_features": ["benchmark"],
        "ssh_key_file": "/etc/circus/builder_key", "ssh_uri": "ssh://nix@[2001:db8::7]",
        "speed_factor": 2.5, "public_host_key": ED25519}

    # A running build on it takes one of its slots.
    jobset = await seed_jobset(client, (await seed_project(client))["id"])
    await insert_build(pool, jobset["id"], "on-it", state="running", builder_id=made["id"])
    await insert_build(pool, jobset["id"], "queued-one")
    assert (await (await client.get(f"{URL}/{made['id']}")).json())["slots_in_use"] == 1

    resp = await client.put(f"{URL}/{made['id']}", headers=ADMIN, json={"ssh_key_file": None})
    assert (await resp.json())["ssh_key_file"] is None
    resp = await client.delete(f"{URL}/{made['id']}", headers=ADMIN)
    assert resp.status == 200 and await resp.json() == {"id": made["id"], "deleted": True}
    assert (await client.get(f"{URL}/{made['id']}")).status == 404
    assert (await client.delete(f"{URL}/{made['id']}", headers=ADMIN)).status == 404
    assert await (await client.get(URL)).json() == {"items": []}
    # The build it ran stays, no longer pointing at it.
    assert await pool.fetchval("SELECT count(*) FROM builds WHERE job = 'on-it' "
                               "AND builder_id IS NULL") == 1


async def test_every_write_notifies_the_runners(client: TestClient,
                                                database_url: str) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(database_url)
    await conn.add_listener(bus.BUILDERS_CHANGED, lambda *args: heard.put_nowait(args[3]))
    try:
        made = await _create(client, builder())
        assert await asyncio.wait_for(heard.get(), 5) == str(made["id"])
        await client.put(f"{URL}/{made['id']}", headers=ADMIN, json={"enabled": False})
        assert await asyncio.wait_for(heard.get(), 5) == str(made["id"])
        await client.delete(f"{URL}/{made['id']}", headers=ADMIN)
        assert await asyncio.wait_for(heard.get(), 5) == str(made["id"])
        # A refused write notifies nothing.
        await client.post(URL, headers=ADMIN, json=builder(max_jobs=0))
        await asyncio.sleep(0.2)
        assert heard.empty()
    finally:
        await conn.close()


async def test_a_new_address_or_host_key_forgets_the_health(client: TestClient,
                                                            pool: asyncpg.Pool) -> None:
    made = await _create(client, builder())
    await pool.execute("UPDATE builders SET health = 'down', consecutive_failures = 3, "
                       "disabled_until = now() + interval '1 hour', last_error = 'refused', "
                       "last_probe_at = now()")
    after = await (await client.put(f"{URL}/{made['id']}", headers=ADMIN,
                                    json={"max_jobs": 2, "enabled": False})).json()
    assert (after["health"], after["consecutive_failures"]) == ("down", 3)
    assert after["disabled_until"] is not None and after["last_probe_at"] is not None
    after = await (await client.put(f"{URL}/{made['id']}", headers=ADMIN,
                                    json={"public_host_key": ECDSA})).json()
    assert (after["health"], after["consecutive_failures"], after["disabled_until"],
            after["last_probe_at"]) == ("unknown", 0, None, None)
    assert after["public_host_key"] == ECDSA and after["last_error"] == "refused"


async def test_writes_are_for_admins_and_reads_for_anyone(client: TestClient) -> None:
    made = await _create(client, builder())
    item = f"{URL}/{made['id']}"
    writes = [("POST", URL, builder("other")), ("PUT", item, {"max_jobs": 2}),
              ("DELETE", item, None)]
    for method, url, body in writes:
        resp = await client.request(method, url, json=body)
        assert "authentication required" in await _error(resp, 401)
        for role, key in ROLE_KEYS.items():
            if role == "admin":
                continue
            resp = await client.request(method, url, json=body, headers=bearer(key))
            assert "may not administer" in await _error(resp, 403), role
    # Unchanged by any of them; and the seed's table lets anyone read.
    assert await (await client.get(item)).json() == made
    assert [b["name"] for b in (await (await client.get(URL)).json())["items"]] == [
        "builder-1"]


BAD = [
    ({"ssh_uri": "builder-1.example.org extra"}, "ssh_uri"),
    ({"ssh_uri": "ssh-ng://a;ssh://evil"}, "ssh_uri"),
    ({"ssh_uri": "ssh-ng://a\nssh://evil"}, "ssh_uri"),
    ({"ssh_uri": "ssh-ng://a x86_64-linux"}, "ssh_uri"),
    ({"ssh_uri": "ssh-ng://host:2222"}, "ssh_uri"),
    ({"ssh_uri": "ssh-ng://host?remote-store=/tmp"}, "ssh_uri"),
    ({"ssh_uri": "ssh://-oProxyCommand=touch%20x"}, "ssh_uri"),
    ({"ssh_uri": "https://host"}, "ssh_uri"),
    ({"ssh_uri": "ssh-ng://[not:an:ipv6::::]"}, "ssh_uri"),
    ({"public_host_key": None}, "public_host_key"),
    ({"public_host_key": "ssh-ed25519 not*base64"}, "public_host_key"),
    ({"public_host_key": "ssh-ed25519 AAAA"}, "public_host_key"),
    ({"public_host_key": "ssh-rsa " + ED25519.split()[1]}, "public_host_key"),
    ({"public_host_key": "ssh-dss " + ED25519.split()[1]}, "public_host_key"),
    ({"public_host_key": ED25519 + "\n" + ECDSA}, "public_host_key"),
    ({"public_host_key": ED25519.split()[1]}, "public_host_key"),
    ({"systems": ["x86_64"]}, "systems[0]"),
    ({"systems": ["x86_64-linux,aarch64-linux"]}, "systems[0]"),
    ({"systems": []}, "systems"),
    ({"systems": "x86_64-linux"}, "systems"),
    ({"max_jobs": 0}, "max_jobs"),
    ({"max_jobs": 1025}, "max_jobs"),
    ({"max_jobs": "4"}, "max_jobs"),
    ({"max_jobs": True}, "max_jobs"),
    ({"speed_factor": 0}, "speed_factor"),
    ({"speed_factor": 1001}, "speed_factor"),
    ({"supported_features": ["kvm big"]}, "supported_features[0]"),
    ({"mandatory_features": ["a,b"]}, "mandatory_features[0]"),
    ({"ssh_key_file": "relative/key"}, "ssh_key_file"),
    ({"ssh_key_file": "/with space/key"}, "ssh_key_file"),
    ({"ssh_key_file": "/a,b"}, "ssh_key_file"),
    ({"name": "-leading-dash"}, "name"),
    ({"name": "a" * 65}, "name"),
    ({"enabled": "yes"}, "enabled"),
    ({"port": 22}, "port"),
    ({"health": "up"}, "health"),
]


@pytest.mark.parametrize(("fields", "field"), BAD)
async def test_each_check_names_its_field(client: TestClient, fields: dict[str, Any],
                                          field: str) -> None:
    body = {k: v for k, v in builder(**fields).items() if v is not None}
    message = await _error(await client.post(URL, headers=ADMIN, json=body), 400)
    assert message.startswith(f"{field}: "), message
    made = await _create(client, builder("good"))
    # An update is checked the same (null is no host key either).
    resp = await client.put(f"{URL}/{made['id']}", headers=ADMIN, json=fields)
    assert (await _error(resp, 400)).startswith(f"{field}: ")
    assert await (await client.get(URL)).json() == {"items": [made]}


async def test_required_fields_and_names_taken(client: TestClient) -> None:
    body = builder()
    for key in ("name", "ssh_uri", "systems", "public_host_key"):
        missing = {k: v for k, v in body.items() if k != key}
        assert await _error(await client.post(URL, headers=ADMIN, json=missing),
                            400) == f"{key}: is required"
    first = await _create(client, body)
    other = await _create(client, builder("builder-2"))
    assert "already exists" in await _error(
        await client.post(URL, headers=ADMIN, json=builder()), 409)
    resp = await client.put(f"{URL}/{other['id']}", headers=ADMIN, json={"name": "builder-1"})
    assert (await _error(resp, 409)).startswith("name: ")
    assert [b["id"] for b in (await (await client.get(URL)).json())["items"]] == [
        first["id"], other["id"]]


async def test_unknown_builders_are_404(client: TestClient) -> None:
    for method in ("GET", "PUT", "DELETE"):
        for ident in ("999999", "nope", "0"):
            resp = await client.request(method, f"{URL}/{ident}", headers=ADMIN,
                                        json={"max_jobs": 2} if method == "PUT" else None)
            assert resp.status == 404, (method, ident)


def _declared(*builders: dict[str, Any]) -> dict[str, Any]:
    return {"declarative": {"remote_builders": list(builders)}}


async def _rows(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(
        "SELECT name, ssh_uri, max_jobs, supported_features, public_host_key, enabled, "
        "declarative, updated_at FROM builders ORDER BY name")]


async def test_declared_builders_are_applied_at_each_start(
        client: TestClient, make_config: Callable[..., Config], pool: asyncpg.Pool) -> None:
    by_api = await _create(client, builder("by-api"))
    first = make_config(_declared(
        {"name": "big", "ssh_uri": "big.example.org", "systems": ["x86_64-linux"],
         "public_host_key": f"{ED25519} root@big", "max_jobs": 16,
         "supported_features": ["kvm"]},
        {"name": "small", "ssh_uri": "ssh://nix@small.example.org",
         "systems": ["aarch64-linux"], "public_host_key": ECDSA, "enabled": False}))
    await declarative.apply(pool, first.declarative)
    rows = await _rows(pool)
    assert [(r["name"], r["ssh_uri"], r["max_jobs"], r["supported_features"],
             r["public_host_key"], r["enabled"], r["declarative"]) for r in rows] == [
        ("big", "ssh-ng://big.example.org", 16, ["kvm"], ED25519, True, True),
        ("by-api", "ssh-ng://nix@by-api.example.org", 1, [], ED25519, True, False),
        ("small", "ssh://nix@small.example.org", 1, [], ECDSA, False, True)]
    # The same configuration again changes nothing, not even updated_at.
    await declarative.apply(pool, first.declarative)
    assert await _rows(pool) == rows

    # The next start: `small` is gone from the file, `big` changed (not its address or
    # host key, so what the probes saw stays); by-api stays.
    await pool.execute("UPDATE builders SET health = 'up' WHERE name = 'big'")
    second = make_config(_declared(
        {"name": "big", "ssh_uri": "big.example.org", "systems": ["x86_64-linux"],
         "public_host_key": ED25519, "max_jobs": 32}))
    await declarative.apply(pool, second.declarative)
    after = await _rows(pool)
    assert [(r["name"], r["max_jobs"], r["supported_features"], r["declarative"])
            for r in after] == [("big", 32, [], True), ("by-api", 1, [], False)]
    assert after[1] == rows[1]
    assert await pool.fetchval("SELECT health FROM builders WHERE name = 'big'") == "up"
    listed = (await (await client.get(URL)).json())["items"]
    assert [(b["name"], b["declarative"]) for b in listed] == [("big", True),
                                                               ("by-api", False)]
    assert listed[1] == by_api


@pytest.mark.parametrize(("entry", "message"), [
    ({"ssh_uri": "host;ssh://evil"}, "declarative.remote_builders[0].ssh_uri: "),
    ({"public_host_key": "ssh-ed25519 %%%"}, "declarative.remote_builders[0].public_host_key"),
    ({"systems": ["linux"]}, "declarative.remote_builders[0].systems[0]: "),
    ({"max_jobs": 0}, "declarative.remote_builders[0].max_jobs: "),
    ({"port": 22}, "declarative.remote_builders[0].port: unknown key"),
    ({"public_host_key": None}, "declarative.remote_builders[0].public_host_key: required"),
])
def test_declared_builders_are_checked_as_the_api_checks(entry: dict[str, Any],
                                                         message: str) -> None:
    declared = {k: v for k, v in builder(**entry).items() if v is not None}
    with pytest.raises(ConfigError, match=re.escape(message)):
        structure(_declared(declared))


def test_a_name_declared_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match=re.escape(
            "declarative.remote_builders: 'b' is declared twice")):
        structure(_declared(builder("b"), builder("b", max_jobs=2)))


async def test_the_saved_declarative_file_is_checked_too(client: TestClient) -> None:
    resp = await client.put("/api/v1/admin/config", headers=ADMIN, json={"declarative": {
        "remote_builders": [builder("ok"), builder("bad", public_host_key="ssh-ed25519 AAAA")]}})
    assert (await _error(resp, 400)).startswith(
        "declarative.remote_builders[1].public_host_key: ")
    resp = await client.put("/api/v1/admin/config", headers=ADMIN,
                            json={"declarative": {"remote_builders": [builder("ok")]}})
    assert resp.status == 200, await resp.text()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_prometheus_counts_the_builders_getting_builds(client: TestClient,
                                                             pool: asyncpg.Pool) -> None:
    for name in ("up-1", "up-2", "backing-off", "down", "off"):
        await _create(client, builder(name, max_jobs=3))
    await pool.execute("UPDATE builders SET health = 'up' WHERE name <> 'down'")
    await pool.execute("UPDATE builders SET health = 'down', consecutive_failures = 4 "
                       "WHERE name = 'down'")
    await pool.execute("UPDATE builders SET disabled_until = now() + interval '1 hour', "
                       "consecutive_failures = 2 WHERE name = 'backing-off'")
    await pool.execute("UPDATE builders SET enabled = false WHERE name = 'off'")
    await pool.execute("UPDATE builders SET disabled_until = now() - interval '1 minute' "
                       "WHERE name = 'up-2'")
    jobset = await seed_jobset(client, (await seed_project(client))["id"])
    up_1 = await pool.fetchval("SELECT id FROM builders WHERE name = 'up-1'")
    for job in ("a", "b"):
        await insert_build(pool, jobset["id"], job, state="running", builder_id=up_1)
    samples = _samples(await (await client.get("/prometheus")).text())
    assert samples[("circus_remote_builders_active", ())] == 2
    expected = {"up-1": (1, 2, 0), "up-2": (1, 0, 0), "backing-off": (1, 0, 2),
                "down": (0, 0, 4), "off": (1, 0, 0)}
    for name, (up, slots, failures) in expected.items():
        label = (("builder", name),)
        assert samples[("circus_builder_up", label)] == up, name
        assert samples[("circus_builder_slots_in_use", label)] == slots, name
        assert samples[("circus_builder_max_jobs", label)] == 3, name
        assert samples[("circus_builder_consecutive_failures", label)] == failures, name


async def test_the_key_file_is_never_read_into_an_answer(client: TestClient,
                                                         tmp_path: Path) -> None:
    marker = "PRIVATE-KEY-MARKER-5b1f0c"
    key_file = tmp_path / "builder_key"
    key_file.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{marker}\n"
                        "-----END OPENSSH PRIVATE KEY-----\n")
    made = await _create(client, builder(ssh_key_file=str(key_file)))
    assert made["ssh_key_file"] == str(key_file)
    await login(client, ADMIN_KEY)
    answers = [await (await client.get(URL)).text(),
               await (await client.get(f"{URL}/{made['id']}")).text(),
               await (await client.get("/prometheus")).text(),
               await (await client.get("/admin")).text(),
               await (await client.get("/api/v1/admin/config", headers=ADMIN)).text(),
               await (await client.get("/api/v1/openapi.json")).text()]
    assert "builder-1" in answers[3] and str(key_file) not in answers[2]
    for text in answers:
        assert marker not in text


async def test_the_admin_page_shows_the_builders(client: TestClient,
                                                 pool: asyncpg.Pool) -> None:
    await login(client, ADMIN_KEY)
    page = await (await client.get("/admin")).text()
    assert "No remote builders" in page and "no backend" not in page
    made = await _create(client, builder("shown", systems=["x86_64-linux", "i686-linux"],
                                         max_jobs=6))
    await pool.execute("UPDATE builders SET health = 'down', consecutive_failures = 2, "
                       "last_error = 'Host key verification <failed>', psi_cpu = 12.5, "
                       "psi_memory = 3.25, disabled_until = '2030-01-02 03:04:05+00' "
                       "WHERE id = $1", made["id"])
    jobset = await seed_jobset(client, (await seed_project(client))["id"])
    await insert_build(pool, jobset["id"], "a", state="running", builder_id=made["id"])
    page = await (await client.get("/admin")).text()
    section = page[page.index('id="remote-builders"'):]
    section = section[:section.index("</section>")]
    for text in ("shown", "ssh-ng://nix@shown.example.org", "x86_64-linux, i686-linux",
                 "1 / 6", "down", "Host key verification &lt;failed&gt;",
                 "2030-01-02 03:04:05 UTC", "12.5 / 3.2"):
        assert text in section, text
