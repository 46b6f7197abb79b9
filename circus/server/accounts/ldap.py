"""LDAP bind login (`[server.ldap]`): `POST /auth/ldap` with username and password.

The password is checked by binding as `bind_dn_template` with the username put in (as an
escaped RDN value); the directory decides. A first login creates a read-only user.

ldap3 (pure Python) rather than bonsai: it installs from a wheel with no libldap headers
to build against; it blocks, so each login runs in a thread.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import ldap3
import structlog
from aiohttp import web
from ldap3.core.exceptions import LDAPBindError, LDAPException
from ldap3.utils.dn import escape_rdn

from circus.app.config import LdapConfig
from circus.server.accounts import login as accounts
from circus.server.accounts.users import USERNAME_RE
from circus.server.http import params
from circus.server.http.errors import ApiError, not_found
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import STR, doc, obj
from circus.services import login as logins

log = structlog.get_logger(__name__)

TIMEOUT = 10


def _config(request: web.Request) -> LdapConfig:
    ldap = request.app[CONTEXT].config.server.ldap
    if not ldap.url or not ldap.bind_dn_template:
        raise not_found("LDAP login (not configured: [server.ldap])")
    return ldap


def _bind(config: LdapConfig, username: str, password: str) -> dict[str, Any] | None:
    """The entry's mail and cn when the bind succeeds, None when the directory refuses."""
    tls = None
    if config.tls_ca_cert:
        tls = ldap3.Tls(ca_certs_file=config.tls_ca_cert, validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(config.url or "", connect_timeout=TIMEOUT, tls=tls,
                          get_info=ldap3.NONE)
    dn = (config.bind_dn_template or "").format(username=escape_rdn(username))
    conn = ldap3.Connection(server, user=dn, password=password, receive_timeout=TIMEOUT,
                            raise_exceptions=False)
    try:
        if not conn.bind():
            return None
        found: dict[str, Any] = {}
        if conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE,
                       attributes=["mail", "cn"]) and conn.entries:
            entry = conn.entries[0]
            found["mail"] = str(entry.mail.value) if "mail" in entry else None
            found["cn"] = str(entry.cn.value) if "cn" in entry else ""
        return found
    finally:
        conn.unbind()


async def _directory(config: LdapConfig, username: str, password: str
                     ) -> dict[str, Any] | None:
    try:
        return await asyncio.to_thread(_bind, config, username, password)
    except (LDAPBindError, LDAPException, OSError) as exc:
        log.warning("LDAP unreachable", url=config.url, error=str(exc))
        raise ApiError(502, f"LDAP server {config.url} could not be reached: {exc}") from None


@doc("LDAP login (bind as the user): sets the session cookie", tags=("accounts",),
     body=obj(username=STR, password=STR), response=accounts.ME,
     description="404 when [server.ldap] is not set. A form body is accepted too.")
async def login(request: web.Request) -> web.StreamResponse:
    config = _config(request)
    data = await accounts.body(request)
    username = params.name(data, "username", pattern=USERNAME_RE)
    password = params.text(data, "password")

    async def directory(name: str, secret: str) -> dict[str, Any] | None:
        return await _directory(config, name, secret)

    try:
        user_id = await logins.ldap_login(request.app[CONTEXT].pool, accounts.limits(request),
                                          accounts.client(request, data), username, password,
                                          directory)
    except logins.Refused as exc:
        return accounts.refusal(exc)
    return await accounts.logged_in(request, user_id=user_id)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/auth/ldap", login)
