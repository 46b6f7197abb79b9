"""LDAP bind login (`POST /auth/ldap`) against a real slapd started here."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from circus.server.accounts.sessions import COOKIE
from circus.server.http.app import init_app
from tests.helpers.api import ADMIN
from tests.helpers.suite import free_port

SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root secret"
USER_PW = "analytical engine"
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPPASSWD = shutil.which("slappasswd") or "/usr/sbin/slappasswd"

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {dir}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_pw}
directory {dir}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""

ENTRIES = """\
dn: {suffix}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=users,{suffix}
objectClass: organizationalUnit
ou: users

dn: uid=ada,ou=users,{suffix}
objectClass: inetOrgPerson
uid: ada
cn: Ada Lovelace
sn: Lovelace
mail: ada@example.com
userPassword: {password}

dn: uid=grace,ou=users,{suffix}
objectClass: inetOrgPerson
uid: grace
cn: Grace Hopper
sn: Hopper
userPassword: {password}
"""


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"slapd exited: {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("slapd did not listen within 30 s")


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A slapd on a free loopback port with ou=users holding ada and grace; its URL."""
    root = tmp_path_factory.mktemp("slapd")
    (root / "db").mkdir()
    conf = root / "slapd.conf"
    conf.write_text(SLAPD_CONF.format(dir=root, suffix=SUFFIX, root_dn=ROOT_DN,
                                      root_pw=ROOT_PW.replace(" ", "\\ ")))
    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    log = root / "slapd.log"
    with log.open("w") as out:
        # -d keeps slapd in the foreground, so it is our child to stop.
        proc = subprocess.Popen([SLAPD, "-f", str(conf), "-h", f"{url}/", "-d", "0"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc, log)
        hashed = subprocess.run([SLAPPASSWD, "-s", USER_PW], check=True, capture_output=True,
                                text=True).stdout.strip()
        subprocess.run(["ldapadd", "-x", "-H", url, "-D", ROOT_DN, "-w", ROOT_PW],
                       input=ENTRIES.format(suffix=SUFFIX, password=hashed), text=True,
                       check=True, capture_output=True)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
async def ldap_client(aiohttp_client: Any, context: Any, slapd: str) -> TestClient:
    ldap = context.config.server.ldap
    ldap.url = slapd
    ldap.bind_dn_template = f"uid={{username}},ou=users,{SUFFIX}"
    ldap.base_dn = SUFFIX
    return await aiohttp_client(await init_app(context))


async def test_ldap_login_creates_a_read_only_user(ldap_client: TestClient,
                                                   pool: Any) -> None:
    resp = await ldap_client.post("/auth/ldap", json={"username": "ada", "password": USER_PW})
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert (doc["username"], doc["role"], doc["auth_source"]) == ("ada", "read-only", "ldap")
    assert doc["email"] == "ada@example.com" and doc["full_name"] == "Ada Lovelace"
    assert resp.cookies[COOKIE]["httponly"] is True
    me = await (await ldap_client.get("/api/v1/me")).json()
    assert me["username"] == "ada" and me["csrf_token"] == doc["csrf_token"]
    # No password is kept for a directory user.
    assert await pool.fetchval("SELECT password_hash FROM users WHERE username = 'ada'") is None

    # The second login finds the same user, whose role an admin may have raised.
    await ldap_client.put(f"/api/v1/users/{doc['id']}", headers=ADMIN, json={"role": "admin"})
    ldap_client.session.cookie_jar.clear()
    # A form login comes from this server's own page (login CSRF: tests/test_security_login).
    resp = await ldap_client.post("/auth/ldap", data={"username": "ada", "password": USER_PW},
                                  headers={"Origin": str(ldap_client.make_url("")).rstrip("/")})
    assert resp.status == 200
    again = await resp.json()
    assert (again["id"], again["role"]) == (doc["id"], "admin")
    assert await pool.fetchval("SELECT count(*) FROM users") == 1


@pytest.mark.parametrize(("body", "status"), [
    ({"username": "ada", "password": "not the password"}, 401),
    ({"username": "nobody", "password": USER_PW}, 401),
    # An empty password would be an anonymous bind, which slapd accepts.
    ({"username": "ada", "password": ""}, 401),
    ({"username": "ada,ou=users", "password": USER_PW}, 400),
    ({"username": "ada"}, 400),
])
async def test_ldap_login_refused(ldap_client: TestClient, body: dict[str, str],
                                  status: int, pool: Any) -> None:
    resp = await ldap_client.post("/auth/ldap", json=body)
    assert resp.status == status, await resp.text()
    assert COOKIE not in resp.cookies
    assert await pool.fetchval("SELECT count(*) FROM users") == 0


async def test_ldap_does_not_take_over_a_local_account(ldap_client: TestClient) -> None:
    resp = await ldap_client.post("/api/v1/users", headers=ADMIN,
                                  json={"username": "grace", "password": "local password"})
    assert resp.status == 201
    resp = await ldap_client.post("/auth/ldap", json={"username": "grace",
                                                      "password": USER_PW})
    assert resp.status == 409 and "local account" in (await resp.json())["error"]


async def test_ldap_not_configured_or_unreachable(client: TestClient, aiohttp_client: Any,
                                                  context: Any) -> None:
    resp = await client.post("/auth/ldap", json={"username": "ada", "password": USER_PW})
    assert resp.status == 404 and "not configured" in (await resp.json())["error"]
    context.config.server.ldap.url = f"ldap://127.0.0.1:{free_port()}"
    context.config.server.ldap.bind_dn_template = f"uid={{username}},ou=users,{SUFFIX}"
    down = await aiohttp_client(await init_app(context))
    resp = await down.post("/auth/ldap", json={"username": "ada", "password": USER_PW})
    assert resp.status == 502 and "could not be reached" in (await resp.json())["error"]
