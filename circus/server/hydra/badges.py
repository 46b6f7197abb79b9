"""Status images of a job's latest build, and a redirect to its latest success:
/job/{project}/{jobset}/{job}/shield (flat, square), /badge (rounded) and /latest.

`/shield` and `/latest` are also Hydra's URLs (a shields.io document, a redirect to
Hydra's build page): `http/routes.SHARED` gives a request for JSON to Hydra's answer and
registers both routes; this module registers `/badge`."""

from __future__ import annotations

from html import escape

from aiohttp import web

from circus.domain.status import BuildStatus
from circus.server.http.errors import not_found
from circus.server.http.keys import CONTEXT
from circus.server.http.openapi import doc
from circus.store import jobs

SVG = "image/svg+xml"
# message → colour, as shields.io draws them.
COLOURS = {"passing": "#4c1", "failing": "#e05d44", "cancelled": "#9f9f9f",
           "queued": "#dfb317", "running": "#007ec6"}
JOB_PATH = "/job/{project}/{jobset}/{job}"
# Badges change with every build: caches must ask again.
NO_CACHE = {"Cache-Control": "no-cache, max-age=0"}


def _names(request: web.Request) -> tuple[str, str, str]:
    info = request.match_info
    return info["project"], info["jobset"], info["job"]


async def _message(request: web.Request) -> str:
    pool = request.app[CONTEXT].pool
    names = _names(request)
    row = await jobs.latest_finished_build(pool, names)
    if row is None:
        row = await jobs.latest_build(pool, names)
        if row is None:
            raise not_found(f"job {':'.join(names)}")
        state: str = row["state"]
        return state  # queued or running: nothing finished yet
    if row["buildstatus"] == BuildStatus.SUCCEEDED:
        return "passing"
    return "cancelled" if row["buildstatus"] == BuildStatus.CANCELLED else "failing"


def _text_width(text: str) -> int:
    # Verdana 11px averages about 6.5 px a character; badges need not be exact.
    return int(len(text) * 6.5) + 10


def render(label: str, message: str, rounded: bool) -> str:
    left, right = _text_width(label), _text_width(message)
    width = left + right
    colour = COLOURS.get(message, "#9f9f9f")
    radius = 3 if rounded else 0
    label, message = escape(label), escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{label}: {message}"><title>{label}: {message}</title>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="{radius}" fill="#fff"/>'
        f'</clipPath><g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,sans-serif" '
        f'font-size="11"><text x="{left / 2}" y="14">{label}</text>'
        f'<text x="{left + right / 2}" y="14">{message}</text></g></svg>'
    )


@doc("A flat square status image of the job's latest build", content_type=SVG,
     response={"type": "string"}, tags=("badges",))
async def shield(request: web.Request) -> web.Response:
    svg = render("build", await _message(request), rounded=False)
    return web.Response(text=svg, content_type=SVG, headers=NO_CACHE)


@doc("A rounded status badge of the job's latest build", content_type=SVG,
     response={"type": "string"}, tags=("badges",))
async def badge(request: web.Request) -> web.Response:
    svg = render(request.match_info["job"], await _message(request), rounded=True)
    return web.Response(text=svg, content_type=SVG, headers=NO_CACHE)


@doc("Redirect to the API URL of the job's latest successful build", status=302,
     content_type=None, tags=("badges",),
     description="404 when the job has no successful build.")
async def latest(request: web.Request) -> web.Response:
    names = _names(request)
    row = await jobs.latest_build(request.app[CONTEXT].pool, names, successful=True)
    if row is None:
        raise not_found(f"a successful build of job {':'.join(names)}")
    raise web.HTTPFound(f"/api/v1/builds/{row['id']}", headers=NO_CACHE)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(JOB_PATH + "/badge", badge)
