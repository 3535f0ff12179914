"""A feed's file as a table: its header row and its rows, each with where it stands ("line 17", "row 17").

CSV through the csv module (the feed's delimiter and encoding), XLSX through openpyxl in read-only mode
(cells as typed values: a date stays a date). Bytes in, a :class:`Table` out, or :class:`TableError` saying why
the file is not a usable table. No I/O here.
"""

import csv
import datetime as dt
import io
import zipfile
from dataclasses import dataclass

MAX_ROWS = 500_000
XLSX_MAGIC = b"PK\x03\x04"


class TableError(Exception):
    """The file is not a table the feed can read; the message says why."""


@dataclass
class Table:
    header: list[str]
    rows: list[tuple[str, list]]  # (where, cells); a cell is a str, or for XLSX a number, date or None
    kind: str  # "csv" or "xlsx"


def read_table(data: bytes, settings: dict) -> Table:
    kind = settings.get("format", "auto")
    if kind == "auto":
        kind = "xlsx" if data.startswith(XLSX_MAGIC) else "csv"
    if kind == "xlsx":
        return read_xlsx(data, settings.get("sheet", ""))
    return read_csv(data, settings.get("encoding", "utf-8-sig"), settings.get("delimiter", ","))


def read_csv(data: bytes, encoding: str, delimiter: str) -> Table:
    if data.startswith(XLSX_MAGIC):
        raise TableError("The file is an XLSX workbook, not CSV: set the feed's format to xlsx or auto.")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise TableError(
            f"The file is not {encoding} text (line {line}, byte {error.start + 1}): set the feed's encoding "
            "(latin-1 for a file from an older spreadsheet)."
        ) from None
    if "\x00" in text:
        raise TableError("The file holds NUL characters: it is not CSV text (UTF-16 is not read; save as UTF-8).")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
        while not any(cell.strip() for cell in header):
            header = next(reader)  # blank lines before the header
    except StopIteration:
        raise TableError("The file is empty: it needs a header row.") from None
    except csv.Error as error:
        raise TableError(f"line {reader.line_num}: {error}") from None
    rows = []
    line = reader.line_num
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num
            if any(cell.strip() for cell in cells):  # a blank line is not a row
                rows.append((f"line {start}", cells))
                if len(rows) > MAX_ROWS:
                    raise TableError(f"The file has more than {MAX_ROWS:,} rows.")
    except csv.Error as error:
        raise TableError(f"line {line + 1}: {error}") from None
    return Table([cell.strip() for cell in header], rows, "csv")


def read_xlsx(data: bytes, sheet: str = "") -> Table:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    if not data.startswith(XLSX_MAGIC):
        raise TableError("The file is not an XLSX workbook (an .xls or a CSV file?): set the feed's format.")
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as error:
        raise TableError(f"The file is not a readable XLSX workbook: {error}.") from None
    try:
        if sheet and sheet not in book.sheetnames:
            raise TableError(f"The workbook has no sheet {sheet!r}; its sheets: {', '.join(book.sheetnames)}.")
        worksheet = book[sheet] if sheet else book.worksheets[0]
        header, rows = None, []
        for number, cells in enumerate(worksheet.iter_rows(values_only=True), start=1):
            cells = list(cells)
            if not any(_filled(cell) for cell in cells):
                continue
            if header is None:
                header = ["" if cell is None else str(cell).strip() for cell in cells]
                continue
            rows.append((f"row {number}", cells))
            if len(rows) > MAX_ROWS:
                raise TableError(f"The sheet has more than {MAX_ROWS:,} rows.")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise TableError(f"The workbook cannot be read: {error}.") from None
    finally:
        book.close()
    if header is None:
        raise TableError("The sheet is empty: it needs a header row.")
    while header and not header[-1]:
        header.pop()  # a styled but empty column at the right is no column
    return Table(header, rows, "xlsx")


def _filled(cell) -> bool:
    return cell is not None and (not isinstance(cell, str) or cell.strip() != "")


def cell_text(cell) -> str:
    """A cell as text: XLSX numbers that are whole (an employee number read as 1234.0) without their ".0"."""
    if type(cell) is str:
        return cell.strip()
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, dt.datetime | dt.date):
        return cell.isoformat()
    return str(cell).strip()
