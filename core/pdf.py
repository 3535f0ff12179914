"""A small PDF writer for printable lists: titled sections of rows in columns, Helvetica, A4, streamed.

Enough for a report that must print anywhere (the muster report) without a PDF library: text only,
the standard Type 1 fonts every reader has, WinAnsi characters (others print as "?"). The document is
written as it goes, so a long list streams out page by page; the page tree and the cross-reference
table, which need every object's offset, come last.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
MARGIN = 40
FONT_SIZE = 9
LINE = 12
HEADING_SIZE = 12
# Catalog, pages and the two fonts have fixed numbers; pages and their contents follow.
CATALOG, PAGES, FONT, BOLD = 1, 2, 3, 4


@dataclass(frozen=True)
class Column:
    label: str
    width: int  # points


@dataclass
class Section:
    heading: str
    rows: Iterable[tuple]
    note: str = ""  # a line under the heading (a count, a time)


def _text(value) -> str:
    """``value`` as a PDF string literal's contents: WinAnsi, with the three special characters escaped."""
    text = str(value if value is not None else "").encode("cp1252", "replace").decode("cp1252")
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").replace("\r", " ").replace("\n", " ")


def _fit(value, width: int, size: int = FONT_SIZE) -> str:
    """Cut ``value`` to what fits in ``width`` points (Helvetica is at most ~0.56 em wide for most letters)."""
    text = str(value if value is not None else "")
    most = max(1, int(width / (size * 0.56)))
    return text if len(text) <= most else text[: most - 1] + "\u2026"


class _Writer:
    def __init__(self):
        self.offset = 0
        self.offsets: dict[int, int] = {}

    def raw(self, data: bytes) -> bytes:
        self.offset += len(data)
        return data

    def obj(self, number: int, body: bytes) -> bytes:
        self.offsets[number] = self.offset
        return self.raw(b"%d 0 obj\n" % number + body + b"\nendobj\n")


def render(title: str, columns: list[Column], sections: Iterable[Section], footer: str = "") -> Iterator[bytes]:
    """The PDF document, in chunks: ``title`` and ``footer`` on every page, each section's heading, then its rows
    under the column labels (repeated on each new page)."""
    writer = _Writer()
    yield writer.raw(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    yield writer.obj(FONT, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    yield writer.obj(BOLD, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    page_ids: list[int] = []
    next_id = BOLD + 1
    lines: list[str] = []
    y = 0

    def start_page():
        nonlocal y
        lines.clear()
        y = PAGE_HEIGHT - MARGIN
        lines.append(f"BT /F2 {HEADING_SIZE} Tf {MARGIN} {y} Td ({_text(title)}) Tj ET")
        y -= LINE * 2

    def finish_page() -> bytes:
        nonlocal next_id
        number = len(page_ids) + 1
        lines.append(f"BT /F1 8 Tf {MARGIN} {MARGIN - 16} Td ({_text(footer)}  -  page {number}) Tj ET")
        content = "\n".join(lines).encode("cp1252", "replace")
        page, stream = next_id, next_id + 1
        next_id += 2
        page_ids.append(page)
        chunk = writer.obj(
            page,
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> >>"
            % (PAGES, PAGE_WIDTH, PAGE_HEIGHT, stream, FONT, BOLD),
        )
        return chunk + writer.obj(stream, b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")

    def row(cells, font: str = "F1"):
        nonlocal y
        x = MARGIN
        for column, cell in zip(columns, cells, strict=False):
            lines.append(f"BT /{font} {FONT_SIZE} Tf {x} {y} Td ({_text(_fit(cell, column.width - 6))}) Tj ET")
            x += column.width
        y -= LINE

    def room(needed: int) -> bool:
        return y - needed * LINE >= MARGIN

    start_page()
    for section in sections:
        if not room(4):
            yield finish_page()
            start_page()
        y -= LINE // 2
        lines.append(f"BT /F2 11 Tf {MARGIN} {y} Td ({_text(section.heading)}) Tj ET")
        y -= LINE
        if section.note:
            lines.append(f"BT /F1 {FONT_SIZE} Tf {MARGIN} {y} Td ({_text(section.note)}) Tj ET")
            y -= LINE
        row([column.label for column in columns], "F2")
        for cells in section.rows:
            if not room(1):
                yield finish_page()
                start_page()
                lines.append(f"BT /F2 {FONT_SIZE} Tf {MARGIN} {y} Td ({_text(section.heading + ' (continued)')}) Tj ET")
                y -= LINE
                row([column.label for column in columns], "F2")
            row(cells)
    yield finish_page()
    kids = b" ".join(b"%d 0 R" % page for page in page_ids)
    yield writer.obj(PAGES, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids)))
    yield writer.obj(CATALOG, b"<< /Type /Catalog /Pages %d 0 R >>" % PAGES)
    xref_at = writer.offset
    count = next_id
    table = [b"xref\n0 %d\n" % count, b"0000000000 65535 f \n"]
    table += [b"%010d 00000 n \n" % writer.offsets[number] for number in range(1, count)]
    trailer = b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (count, CATALOG, xref_at)
    yield writer.raw(b"".join(table) + trailer)
