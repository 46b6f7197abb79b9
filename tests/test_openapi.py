"""The OpenAPI contract: every route that exists is in the document with a declaration of
its own, the document names no route that does not exist, and it is a valid document."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from openapi_spec_validator import validate

from circus.server.http import openapi, routes


def _app() -> web.Application:
    app = web.Application()
    routes.setup_routes(app)
    return app


def _sample(path: str, parameters: list[dict]) -> str:
    schemas = {p["name"]: p["schema"] for p in parameters if p["in"] == "path"}

    def value(name: str) -> str:
        schema = schemas.get(name, {})
        return str(schema.get("example", "7" if schema.get("type") == "integer" else "sample"))

    return re.sub(r"\{([^}]+)\}", lambda m: value(m.group(1)), path)


def test_every_route_is_documented_by_its_module() -> None:
    assert openapi.undocumented(_app()) == []


def test_a_route_without_a_declaration_is_caught() -> None:
    app = _app()
    before = set(openapi.undocumented(app))

    async def bare(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post("/api/v1/undeclared/{id}", bare)
    assert set(openapi.undocumented(app)) - before == {"POST /api/v1/undeclared/{id}"}
    assert openapi.document(app)["paths"]["/api/v1/undeclared/{id}"]["post"][
        "x-undocumented"]


async def test_document_and_router_agree_both_ways() -> None:
    app = _app()
    document = openapi.document(app)
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    existing = {(m, p) for m, p, _route in openapi.routes(app)}
    assert documented == existing
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            url = _sample(path, op["parameters"])
            match = await app.router.resolve(make_mocked_request(method.upper(), url))
            assert match.http_exception is None, f"{method.upper()} {path} ({url})"
            assert not op.get("x-undocumented"), path
            assert op["summary"] and op["responses"]["default"]
            assert any(code[0] in "23" for code in op["responses"]), (method, path)


def test_document_is_valid_openapi() -> None:
    validate(openapi.document(_app()))


async def test_served_document_is_the_router_walk(client: TestClient) -> None:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    served = await resp.json()
    validate(served)
    assert served["paths"].keys() == openapi.document(client.app)["paths"].keys()
    assert "/api/v1/builds/{id}/products/{nr}/download" in served["paths"]
    bump = served["paths"]["/api/v1/builds/{id}/bump"]["post"]
    assert bump["x-permission"] == "bump-build"
    assert bump["security"] == [{"bearer": []}, {"session": []}]
