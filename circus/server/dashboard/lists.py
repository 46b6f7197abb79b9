"""The filtered, paginated build list the dashboard shows on many pages (builds, jobset,
evaluation, project), read through the same access paths as GET /api/v1/builds so it
stays an index scan with 1 000 000 builds."""

from __future__ import annotations

from typing import Any

import asyncpg
import attrs
from aiohttp import web

from circus.domain import status as buildstatus
from circus.domain.errors import InvalidValue
from circus.server.dashboard.view import PAGE_SIZE, Pager, filter_text, page_offset, pager
from circus.server.http import params
from circus.server.http.errors import bad_field
from circus.store import build_list


@attrs.frozen
class BuildFilter:
    project_id: int | None = None
    jobset_id: int | None = None
    evaluation_id: int | None = None
    status: str | None = None
    job: str | None = None
    system: str | None = None

    def narrowed(self) -> build_list.Filters:
        state, code = (None, None)
        if self.status:
            try:
                state, code = buildstatus.parse_filter(self.status)
            except InvalidValue as exc:
                raise bad_field(exc.field, exc.problem) from exc
        return build_list.Filters(self.project_id, self.jobset_id, self.evaluation_id, state,
                                  code, self.job, self.system)


def filter_from(request: web.Request, **fixed: int | None) -> BuildFilter:
    """The filters of the query string; `fixed` ones (the page's own) win."""
    values: dict[str, Any] = {
        "project_id": params.query_id(request, "project_id"),
        "jobset_id": params.query_id(request, "jobset_id"),
        "evaluation_id": params.query_id(request, "evaluation_id"),
        "status": filter_text(request, "status"),
        "job": filter_text(request, "job"),
        "system": filter_text(request, "system"),
    }
    values.update({k: v for k, v in fixed.items() if v is not None})
    return BuildFilter(**values)


async def build_page(pool: asyncpg.Pool, request: web.Request,
                     wanted: BuildFilter) -> tuple[list[asyncpg.Record], Pager]:
    filters = wanted.narrowed()
    # The API's own choice of index and its capped count: one place to tune them.
    rows = await build_list.page(pool, filters, PAGE_SIZE, page_offset(request), None)
    total, exact = await build_list.total(pool, filters)
    return rows, pager(request, total, exact=exact)


STATUS_CHOICES = (*buildstatus.STATES, *buildstatus.CODE_NAMES.values())
