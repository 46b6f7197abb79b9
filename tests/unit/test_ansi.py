"""circus.server.dashboard.ansi: the colours of a build log as HTML spans, every other
character escaped, and escape sequences that are not colours dropped."""

from __future__ import annotations

import pytest

from circus.server.dashboard.ansi import Converter, to_html

ESC = "\x1b"


def test_plain_text_is_html_escaped() -> None:
    # Quotes need no escaping outside attributes; < > & always do.
    assert to_html('<script>alert("x") & \'y\'</script>') == \
        '&lt;script&gt;alert("x") &amp; \'y\'&lt;/script&gt;'


def test_a_colour_becomes_a_span_until_reset() -> None:
    assert to_html(f"{ESC}[31mred{ESC}[0m plain") == '<span class="ansi-fg-1">red</span> plain'
    # An empty parameter list is a reset too.
    assert to_html(f"{ESC}[32mgreen{ESC}[m plain") == \
        '<span class="ansi-fg-2">green</span> plain'


def test_text_inside_a_span_is_escaped() -> None:
    assert to_html(f"{ESC}[31m<b>&{ESC}[0m") == '<span class="ansi-fg-1">&lt;b&gt;&amp;</span>'


@pytest.mark.parametrize(("sgr", "classes"), [
    ("30", "ansi-fg-0"), ("37", "ansi-fg-7"), ("90", "ansi-fg-8"), ("97", "ansi-fg-15"),
    ("40", "ansi-bg-0"), ("47", "ansi-bg-7"), ("100", "ansi-bg-8"), ("107", "ansi-bg-15"),
    ("1", "ansi-bold"), ("2", "ansi-dim"), ("3", "ansi-italic"), ("4", "ansi-underline"),
    ("1;31;42", "ansi-fg-1 ansi-bg-2 ansi-bold"),
    ("38;5;3", "ansi-fg-3"), ("48;5;12", "ansi-bg-12"),  # the 16 base colours stay classes
])
def test_colours_and_attributes_are_classes(sgr: str, classes: str) -> None:
    assert to_html(f"{ESC}[{sgr}mx") == f'<span class="{classes}">x</span>'


@pytest.mark.parametrize(("sgr", "style"), [
    ("38;5;196", "color:#ff0000"),           # the 6x6x6 cube
    ("38;5;16", "color:#000000"),
    ("38;5;231", "color:#ffffff"),
    ("38;5;240", "color:#585858"),           # the grey ramp: 8 + 10 * 8
    ("38;5;255", "color:#eeeeee"),
    ("38;2;1;2;3", "color:#010203"),         # 24-bit colour
    ("48;2;300;0;0", "background-color:#ff0000"),  # out of range: clamped
    ("38;5;999", "color:#eeeeee"),
])
def test_extended_colours_are_inline_styles(sgr: str, style: str) -> None:
    assert to_html(f"{ESC}[{sgr}mx") == f'<span style="{style}">x</span>'


def test_attributes_are_switched_off_one_by_one() -> None:
    text = (f"{ESC}[1;3;4;31;42ma{ESC}[22mb{ESC}[23mc{ESC}[24md{ESC}[39me{ESC}[49mf")
    assert to_html(text) == (
        '<span class="ansi-fg-1 ansi-bg-2 ansi-bold ansi-italic ansi-underline">a</span>'
        '<span class="ansi-fg-1 ansi-bg-2 ansi-italic ansi-underline">b</span>'
        '<span class="ansi-fg-1 ansi-bg-2 ansi-underline">c</span>'
        '<span class="ansi-fg-1 ansi-bg-2">d</span>'
        '<span class="ansi-bg-2">e</span>'
        "f")


def test_a_later_colour_replaces_the_earlier_one() -> None:
    assert to_html(f"{ESC}[31m{ESC}[34mx") == '<span class="ansi-fg-4">x</span>'


def test_a_span_never_spans_an_escape_and_newlines_keep_the_colour() -> None:
    assert to_html(f"{ESC}[31ma\nb{ESC}[1mc") == (
        '<span class="ansi-fg-1">a\nb</span><span class="ansi-fg-1 ansi-bold">c</span>')


@pytest.mark.parametrize("sequence", [
    f"{ESC}[2K",          # erase line
    f"{ESC}[1A",          # cursor up
    f"{ESC}[10;20H",      # cursor position
    f"{ESC}[?25l",        # hide cursor
    f"{ESC}]0;window title\x07",            # OSC terminated by BEL
    f"{ESC}]0;window title{ESC}\\",         # OSC terminated by ST
    f"{ESC}M",            # reverse index, a two-byte escape
])
def test_sequences_that_are_not_colours_are_dropped(sequence: str) -> None:
    assert to_html(f"a{sequence}b") == "ab"


def test_a_hyperlink_keeps_its_text_only() -> None:
    assert to_html(f"{ESC}]8;;https://example.org{ESC}\\link{ESC}]8;;{ESC}\\ after") == \
        "link after"


def test_control_characters_are_dropped_but_tab_and_newlines_kept() -> None:
    assert to_html("a\x00b\x07c\x08d\x7fe\tf\r\n") == "abcde\tf\r\n"


def test_a_non_colour_sequence_does_not_change_the_colour() -> None:
    assert to_html(f"{ESC}[31ma{ESC}[2Kb") == \
        '<span class="ansi-fg-1">a</span><span class="ansi-fg-1">b</span>'


def test_the_converter_keeps_its_colour_between_pieces() -> None:
    # A live log arrives in pieces: a colour set in one applies to the next.
    converter = Converter()
    assert converter.feed(f"{ESC}[33m") == ""
    assert converter.feed("warn") == '<span class="ansi-fg-3">warn</span>'
    assert converter.feed(f"{ESC}[0mok") == "ok"
    assert to_html("after") == "after"  # a fresh conversion starts plain


def test_a_sequence_split_between_pieces_colours_as_the_whole_would() -> None:
    converter = Converter()
    assert converter.feed(f"x{ESC}[3") + converter.feed("1mred") == to_html(f"x{ESC}[31mred")


def test_no_escape_character_reaches_the_html() -> None:
    assert ESC not in to_html(f"{ESC}7{ESC}8{ESC}(Bx")
