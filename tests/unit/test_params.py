"""circus.server.http.params: the request input every view reads (paging, query ids,
path ids, JSON bodies and their fields, the body's Content-Type and Content-Encoding),
each bad value refused with a 400 (404 for a path id) whose message names the field.
Requests are aiohttp's mocked ones; no server runs."""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.parse
from collections.abc import Iterator
from unittest import mock

import pytest
from aiohttp import streams, web
from aiohttp.test_utils import make_mocked_request

from circus.server.http import params
from circus.server.http.errors import ApiError


def _get(query: str = "", **match_info: str) -> web.Request:
    return make_mocked_request("GET", f"/x?{query}", match_info=match_info)


def _post(body: bytes, headers: dict[str, str] | None = None) -> web.Request:
    payload = streams.StreamReader(mock.Mock(_reading_paused=False), 2**16,
                                   loop=asyncio.get_running_loop())
    payload.feed_data(body)
    payload.feed_eof()
    return make_mocked_request("POST", "/x", headers=headers, payload=payload)


@contextlib.contextmanager
def _refused(status: int, message: str) -> Iterator[None]:
    """The block raises an ApiError with this status and a message starting so."""
    with pytest.raises(ApiError, match=f"^{re.escape(message)}") as caught:
        yield
    assert caught.value.status == status


# -- paging ------------------------------------------------------------------------------


def test_page_defaults() -> None:
    assert params.page(_get()) == params.Page(limit=50, offset=0)


def test_page_reads_limit_and_offset() -> None:
    assert params.page(_get("limit=7&offset=20")) == params.Page(7, 20)


def test_a_limit_above_the_maximum_is_clamped_not_refused() -> None:
    assert params.page(_get("limit=100000")).limit == params.MAX_LIMIT == 500


@pytest.mark.parametrize(("query", "message"), [
    ("limit=abc", "limit: expected an integer, got 'abc'"),
    ("limit=0", f"limit: must be between 1 and {2**63 - 1}, got 0"),
    ("limit=-5", "limit: must be between 1 and"),
    ("limit=", "limit: expected an integer, got ''"),
    ("limit=1.5", "limit: expected an integer, got '1.5'"),
    (f"limit={2**63}", "limit: must be between 1 and"),
    ("offset=-1", "offset: must be between 0 and 10000000, got -1"),
    ("offset=10000001", "offset: must be between 0 and 10000000, got 10000001"),
    ("offset=ten", "offset: expected an integer, got 'ten'"),
])
def test_a_bad_limit_or_offset_is_a_400_naming_it(query: str, message: str) -> None:
    with _refused(400, message):
        params.page(_get(query))


def test_the_largest_offset_is_accepted() -> None:
    assert params.offset(_get(f"offset={params.MAX_OFFSET}")) == 10_000_000


# -- query values and path ids -----------------------------------------------------------


def test_a_query_id_is_optional_and_positive() -> None:
    assert params.query_id(_get(), "before_id") is None
    assert params.query_id(_get("before_id="), "before_id") is None
    assert params.query_id(_get("before_id=42"), "before_id") == 42
    with _refused(400, "before_id: must be between 1 and"):
        params.query_id(_get("before_id=0"), "before_id")
    with _refused(400, "before_id: expected an integer, got 'x'"):
        params.query_id(_get("before_id=x"), "before_id")


def test_query_text_is_none_when_empty() -> None:
    assert params.query_text(_get("q="), "q") is None
    assert params.query_text(_get("q=a%20b"), "q") == "a b"


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "1.0", " 1", "1_0", str(2**63)])
def test_a_path_id_that_cannot_be_an_id_names_nothing(raw: str) -> None:
    with _refused(404, f"build {raw!r} not found"):
        params.path_id(_get(id=raw), what="build")


@pytest.mark.parametrize("raw", ["²", "١٢", "1" * 5000])
def test_a_path_id_in_other_digits_or_too_long_for_int_names_nothing(raw: str) -> None:
    # str.isdigit() takes all three; int() refuses the first and the last (a 500 once)
    # and reads the second as 12.
    with _refused(404, "build "):
        params.path_id(_get(id=raw), what="build")


@pytest.mark.parametrize("raw", ["+5", " 7 ", "1_0", "١٢", "²"])
def test_a_limit_is_ascii_digits(raw: str) -> None:
    with _refused(400, f"limit: expected an integer, got {raw!r}"):
        params.page(_get(f"limit={urllib.parse.quote(raw)}"))


def test_a_path_id() -> None:
    assert params.path_id(_get(id="12")) == 12
    assert params.path_id(_get(build="9"), field="build") == 9


# -- JSON bodies -------------------------------------------------------------------------


async def test_a_json_object_body_is_read() -> None:
    assert await params.json_body(_post(b'{"name": "x", "n": 1}')) == {"name": "x", "n": 1}


@pytest.mark.parametrize(("body", "message"), [
    (b"", "body: expected a JSON object, got an empty body"),
    (b"  \n", "body: expected a JSON object, got an empty body"),
    (b"[1, 2]", "body: expected a JSON object, got list"),
    (b'"text"', "body: expected a JSON object, got str"),
    (b"{x", "body: malformed JSON: "),
    (b'{"a": "\xff"}', "body: malformed JSON: "),
])
async def test_a_body_that_is_not_a_json_object_is_a_400(body: bytes, message: str) -> None:
    with _refused(400, message):
        await params.json_body(_post(body))


def test_text_fields() -> None:
    body = {"a": "x", "n": None, "i": 3, "z": "a\x00b"}
    assert params.text(body, "a") == "x"
    assert params.text(body, "missing", default="d") == "d"
    assert params.text(body, "n", nullable=True) is None
    with _refused(400, "missing: is required"):
        params.text(body, "missing")
    with _refused(400, "n: expected a string, got null"):
        params.text(body, "n")
    with _refused(400, "i: expected a string, got int"):
        params.text(body, "i")
    with _refused(400, "z: must not contain NUL characters"):
        params.text(body, "z")


def test_boolean_fields_take_only_json_booleans() -> None:
    assert params.boolean({"b": False}, "b", True) is False
    assert params.boolean({}, "b", True) is True
    for value, kind in ((1, "int"), ("true", "str"), (None, "null")):
        with _refused(400, f"b: expected true or false, got {kind}"):
            params.boolean({"b": value}, "b", False)


def test_integer_fields_are_integers_in_range() -> None:
    assert params.integer({"n": 5}, "n", 0) == 5
    assert params.integer({}, "n", 7) == 7
    # A JSON true is an int to Python, not to the API.
    for value, kind in ((True, "bool"), (1.0, "float"), ("1", "str")):
        with _refused(400, f"n: expected an integer, got {kind}"):
            params.integer({"n": value}, "n", 0)
    with _refused(400, "n: must be between 1 and 10, got 11"):
        params.integer({"n": 11}, "n", 0, minimum=1, maximum=10)
    with _refused(400, "n: must be between 0 and 2147483647, got -1"):
        params.integer({"n": -1}, "n", 0)


@pytest.mark.parametrize("value", ["ok", "_x", "a.b-c_9", "A" * 100])
def test_valid_names(value: str) -> None:
    assert params.name({"name": value}) == value


@pytest.mark.parametrize("value", ["", "9lives", "-x", "a b", "a/b", "x\n", "A" * 101, "é"])
def test_invalid_names_are_refused_with_the_pattern(value: str) -> None:
    with _refused(400, f"name: {value!r} is not a valid name (must match "
                       f"{params.NAME_RE.pattern})"):
        params.name({"name": value})


def test_an_input_name_has_its_own_pattern() -> None:
    pattern = params.INPUT_NAME_RE
    assert params.name({"input": "src-2"}, "input", pattern=pattern) == "src-2"
    with _refused(400, "input: 'a.b' is not a valid name"):
        params.name({"input": "a.b"}, "input", pattern=pattern)


# -- Content-Type and Content-Encoding ---------------------------------------------------


@pytest.mark.parametrize(("headers", "message"), [
    ({"Content-Type": "text"}, "Content-Type: malformed header 'text' (expected type/subtype"),
    ({"Content-Type": "text/plain; charset"}, "Content-Type: malformed header"),
    ({"Content-Type": "text/plain; charset=klingon"}, "Content-Type: unknown charset 'klingon'"),
    ({"Content-Type": "multipart/form-data"},
     "Content-Type: multipart/form-data needs a boundary parameter"),
    ({"Content-Encoding": "compress"}, "Content-Encoding: 'compress' is not supported (use one "
                                       "of identity, gzip, x-gzip, deflate"),
    ({"Content-Encoding": "gzip, snappy"}, "Content-Encoding: 'snappy' is not supported"),
])
async def test_a_body_no_view_could_read_is_a_400_naming_the_header(
        headers: dict[str, str], message: str) -> None:
    with _refused(400, message):
        await params.check_body(make_mocked_request("POST", "/x", headers=headers))


async def test_acceptable_bodies_pass() -> None:
    await params.check_body(make_mocked_request("GET", "/x"))
    await params.check_body(_post(b'{"a": 1}', {"Content-Type": "application/json"}))
    await params.check_body(_post("é".encode("latin-1"),
                                  {"Content-Type": 'text/plain; charset="latin-1"'}))
    await params.check_body(_post(b"a=1", {"Content-Type": params.FORM}))


async def test_a_body_not_in_its_charset_is_a_400() -> None:
    with _refused(400, "body: not valid utf-8 (the charset of its Content-Type): "
                       "invalid start byte at byte 0"):
        await params.check_body(_post(b"\xff", {"Content-Type": "text/plain; charset=utf-8"}))
    # A form without a charset is UTF-8.
    with _refused(400, "body: not valid utf-8"):
        await params.check_body(_post(b"a=\xff", {"Content-Type": params.FORM}))
