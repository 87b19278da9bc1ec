"""Reading and writing register sheets: CSV (UTF-8 or GB18030, as Excel saves it) and XLSX.

Pure: bytes in, rows out. The columns and what they mean live in ``importer``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from openpyxl import Workbook, load_workbook

from xueliang.core.errors import InvalidInput
from xueliang.core.text import NUL

SheetFormat = Literal["csv", "xlsx"]
MAX_ROWS = 200_000


@dataclass(frozen=True, slots=True)
class Sheet:
    header: list[str]
    # (line number in the file, cells); blank lines are left out but keep their numbers.
    rows: list[tuple[int, list[str]]]


def detect_format(filename: str | None, data: bytes) -> SheetFormat:
    if data[:4] == b"PK\x03\x04" or (filename or "").lower().endswith((".xlsx", ".xlsm")):
        return "xlsx"
    return "csv"


def _decode(data: bytes) -> str:
    # Excel on a Chinese Windows saves "CSV" as GBK; everything else sends UTF-8 (often with a
    # BOM). GB18030 is a superset of GBK and GB2312.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("the file is neither UTF-8 nor GB18030 text")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value).strip()


def _xlsx_rows(data: bytes) -> Iterator[Sequence[object]]:
    """The first worksheet's rows. The read-only reader parses lazily, so a damaged workbook
    can fail while rows are read, not only when it is opened, and inside openpyxl it fails in
    many ways (bad zip, XML parse errors, missing parts, odd values): all of them are the
    caller's bad file."""
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise InvalidInput(f"not a readable XLSX workbook: {exc}") from exc
    try:
        if not book.worksheets:
            raise InvalidInput("not a readable XLSX workbook: it has no worksheet")
        yield from book.worksheets[0].iter_rows(values_only=True)
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"not a readable XLSX workbook: {exc}") from exc
    finally:
        book.close()


def read_sheet(data: bytes, fmt: SheetFormat) -> Sheet:
    lines: Iterable[Sequence[object]]
    if fmt == "csv":
        text = _decode(data)
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], ",;\t")
        except csv.Error:
            dialect = csv.excel
        lines = csv.reader(io.StringIO(text, newline=""), dialect)
    else:
        lines = _xlsx_rows(data)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    try:
        for number, raw in enumerate(lines, start=1):
            cells = [_cell(v) for v in raw]
            if any(NUL in c for c in cells):
                # PostgreSQL text cannot hold NUL; no spreadsheet program writes one.
                raise InvalidInput(
                    f"line {number} contains a NUL character; is this a text sheet?",
                    details=[{"row": number, "column": None, "message": "NUL character"}],
                )
            if header is None:
                if not any(cells):
                    raise InvalidInput("the first line must be the header")
                header = cells
                continue
            if not any(cells):
                continue
            rows.append((number, cells))
            if len(rows) > MAX_ROWS:
                raise InvalidInput(f"more than {MAX_ROWS} rows; split the sheet")
    except csv.Error as exc:
        raise InvalidInput(f"malformed CSV: {exc}") from exc
    if header is None:
        raise InvalidInput("the sheet is empty")
    return Sheet(header=header, rows=rows)


def write_sheet(header: Sequence[str], rows: Iterable[Sequence[object]], fmt: SheetFormat) -> bytes:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        # A BOM so that Excel opens the UTF-8 file with the Chinese intact.
        return buf.getvalue().encode("utf-8-sig")
    book = Workbook(write_only=True)
    ws = book.create_sheet("register")
    ws.append(list(header))
    for row in rows:
        # IDs go in as text (they are str here): as numbers Excel would round 20-digit codes.
        ws.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
