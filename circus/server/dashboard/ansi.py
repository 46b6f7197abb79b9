"""ANSI colour codes (SGR escape sequences) in build logs to HTML spans.

Build tools colour their output; a log page shows the colours instead of `^[[31m`. Every
other character is HTML-escaped, and escape sequences that are not colours (cursor moves,
line erases, window titles) are dropped. The converter keeps its state between calls, so
a live log converted chunk by chunk colours a line the same as the whole log would.
"""

from __future__ import annotations

import html
import re

import attrs

# CSI sequences (SGR and the rest), OSC strings (titles, hyperlinks), and the other
# escapes: intermediates then a final byte (ESC 7, ESC ( B as `tput sgr0` prints it).
_ESCAPE = re.compile(
    r"\x1b\[([0-9;:?]*)([@-~])"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -/]*[0-~]"
)
# The start of a sequence cut off at the end of a piece: held back for the next piece, up
# to a bound (an OSC string never ended would otherwise grow without limit).
_PARTIAL = re.compile(r"\x1b(?:\[[0-9;:?]*|\][^\x07\x1b]*|[ -/]*)\Z")
MAX_PARTIAL = 256
# The other C0 controls but tab, newline and carriage return show as nothing useful; a
# stray ESC is one of them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@attrs.define
class Style:
    fg: str | None = None  # "1".."15" (class) or "#rrggbb" (inline)
    bg: str | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False

    def is_plain(self) -> bool:
        return self == Style()

    def span_open(self) -> str:
        classes: list[str] = []
        styles: list[str] = []
        for kind, value in (("fg", self.fg), ("bg", self.bg)):
            if value is None:
                continue
            if value.startswith("#"):
                styles.append(f"{'color' if kind == 'fg' else 'background-color'}:{value}")
            else:
                classes.append(f"ansi-{kind}-{value}")
        for flag in ("bold", "dim", "italic", "underline"):
            if getattr(self, flag):
                classes.append(f"ansi-{flag}")
        attrs_ = f' class="{" ".join(classes)}"' if classes else ""
        if styles:
            attrs_ += f' style="{";".join(styles)}"'
        return f"<span{attrs_}>"


def _xterm256(n: int) -> str:
    """A 256-colour palette index: 0-15 as classes, the rest as an RGB colour."""
    if n < 16:
        return str(n)
    if n < 232:
        n -= 16
        levels = (0, 95, 135, 175, 215, 255)
        r, g, b = levels[n // 36], levels[(n // 6) % 6], levels[n % 6]
    else:
        r = g = b = 8 + 10 * (n - 232)
    return f"#{r:02x}{g:02x}{b:02x}"


def _extended(codes: list[int], i: int) -> tuple[str | None, int]:
    """38/48 `;5;n` or `;2;r;g;b` starting after the 38/48 at codes[i]: (colour, next i)."""
    if i + 1 < len(codes) and codes[i + 1] == 5 and i + 2 < len(codes):
        return _xterm256(max(0, min(codes[i + 2], 255))), i + 3
    if i + 1 < len(codes) and codes[i + 1] == 2 and i + 4 < len(codes):
        r, g, b = (max(0, min(c, 255)) for c in codes[i + 2:i + 5])
        return f"#{r:02x}{g:02x}{b:02x}", i + 5
    return None, len(codes)


def _apply(style: Style, params: str) -> Style:
    codes = [int(p) if p.isdigit() else 0 for p in params.replace(":", ";").split(";")]
    s = attrs.evolve(style)
    i = 0
    while i < len(codes):
        c = codes[i]
        i += 1
        if c == 0:
            s = Style()
        elif c == 1:
            s.bold = True
        elif c == 2:
            s.dim = True
        elif c == 3:
            s.italic = True
        elif c == 4:
            s.underline = True
        elif c == 22:
            s.bold = s.dim = False
        elif c == 23:
            s.italic = False
        elif c == 24:
            s.underline = False
        elif 30 <= c <= 37:
            s.fg = str(c - 30)
        elif 90 <= c <= 97:
            s.fg = str(c - 90 + 8)
        elif c == 39:
            s.fg = None
        elif 40 <= c <= 47:
            s.bg = str(c - 40)
        elif 100 <= c <= 107:
            s.bg = str(c - 100 + 8)
        elif c == 49:
            s.bg = None
        elif c in (38, 48):
            colour, i = _extended(codes, i - 1)
            if c == 38:
                s.fg = colour
            else:
                s.bg = colour
    return s


@attrs.define
class Converter:
    """Stateful: feed it a log piece by piece, each call returns safe HTML."""

    style: Style = attrs.Factory(Style)
    pending: str = ""

    def feed(self, text: str) -> str:
        text, self.pending = self.pending + text, ""
        partial = _PARTIAL.search(text)
        if partial and len(text) - partial.start() <= MAX_PARTIAL:
            text, self.pending = text[:partial.start()], text[partial.start():]
        out: list[str] = []
        pos = 0
        for match in _ESCAPE.finditer(text):
            self._text(out, text[pos:match.start()])
            pos = match.end()
            if match.group(2) == "m":
                self.style = _apply(self.style, match.group(1) or "0")
        self._text(out, text[pos:])
        return "".join(out)

    def _text(self, out: list[str], piece: str) -> None:
        if not piece:
            return
        safe = html.escape(_CONTROL.sub("", piece), quote=False)
        if self.style.is_plain():
            out.append(safe)
        else:
            out.append(f"{self.style.span_open()}{safe}</span>")


def to_html(text: str) -> str:
    """One whole text, from the default style."""
    return Converter().feed(text)
