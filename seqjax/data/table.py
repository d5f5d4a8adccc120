"""Tabular files (CSV and JSON lines), read so that every value can be traced to its row and line.

    table = read_csv("data.csv")               # the header and the data rows (blank lines skipped)
    table.require(["y", "x"])                  # ValueError naming what is missing and listing the columns
    y = table.floats("y", fill_nan="error")    # float64, one value per data row
    texts = table.column("text")               # the raw cells (None past the end of a short row)
    table.where(2)                             # 'row 3 (line 4) of data.csv', for error messages

Data rows count from 1: the first row after the header is row 1, and ``line`` is its line in the
file (a quoted cell may span lines). Files are decoded as UTF-8, a leading BOM dropped; another
encoding fails naming the byte offset (:func:`seqjax.data.text.read_text_file`).

Missing numbers: an empty cell or one of ``nan, na, n/a, null, none, .`` (any case) is missing.
:meth:`Table.floats` fails on missing values by default, naming the rows; ``fill_nan='ffill'``
carries the last value forward and ``'interpolate'`` fills linearly in the row index, each with a
``UserWarning`` naming the rows, never silently. Text that is not a number always fails.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqjax.data.text import read_text_file

__all__ = ["FILL_NAN", "Table", "read_csv", "read_jsonl"]

FILL_NAN = ("error", "ffill", "interpolate")
_MISSING = {"", "nan", "na", "n/a", "null", "none", "."}


def _rows_text(rows: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f", ... ({len(rows)} in all)" if len(rows) > limit else "")


@dataclasses.dataclass
class Table:
    """Rows of a tabular file: ``rows[i]`` maps a column name to its value in data row ``i + 1``."""

    path: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]  # the file line of each row

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, i: int) -> str:
        """``'row R (line L) of PATH'`` for the row at index ``i``."""
        return f"row {i + 1} (line {self.lines[i]}) of {self.path}"

    def require(self, names: Sequence[str], what: str = "column") -> None:
        """Raises ValueError unless every name is a column, listing the columns the file has."""
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise ValueError(f"{self.path}: no {what} {', '.join(map(repr, missing))}; "
                             f"its columns are {self.columns}")

    def column(self, name: str) -> list:
        self.require([name])
        return [row.get(name) for row in self.rows]

    def floats(self, name: str, fill_nan: str = "error") -> np.ndarray:
        """The column as float64; missing cells fail or are filled (see the module docstring)."""
        if fill_nan not in FILL_NAN:
            raise ValueError(f"fill_nan must be one of {', '.join(FILL_NAN)}, got {fill_nan!r}")
        cells = ["" if c is None else str(c).strip() for c in self.column(name)]
        x = np.full(len(cells), np.nan)
        bad = []
        for i, cell in enumerate(cells):
            if cell.lower() in _MISSING:
                continue
            try:
                x[i] = float(cell)
            except ValueError:
                bad.append(i)
                continue
            if math.isinf(x[i]):
                bad.append(i)
        if bad:
            shown = "; ".join(f"row {i + 1} (line {self.lines[i]}): {cells[i]!r}" for i in bad[:20])
            raise ValueError(f"{self.path}: column {name!r} has non-numeric values at data rows "
                             f"{_rows_text([i + 1 for i in bad])}: {shown}")
        return _fill(x, cells, fill_nan, name, self.path)


def _fill(x: np.ndarray, cells: list[str], how: str, name: str, path: str) -> np.ndarray:
    nan = np.flatnonzero(np.isnan(x))
    if nan.size == 0:
        return x
    rows = (nan + 1).tolist()
    if how == "error":
        shown = ", ".join(f"row {i + 1}: {cells[i]!r}" for i in nan[:20])
        raise ValueError(f"{path}: column {name!r} has missing/NaN values at data rows {_rows_text(rows)} "
                         f"({shown}); fix the file or set fill_nan='ffill' or 'interpolate'")
    ok = np.flatnonzero(~np.isnan(x))
    if ok.size == 0:
        raise ValueError(f"{path}: column {name!r} has no numeric values at all")
    x = x.copy()
    if how == "ffill":
        if nan[0] < ok[0]:
            raise ValueError(f"{path}: column {name!r} starts with missing values at data rows "
                             f"{_rows_text(list(range(1, ok[0] + 1)))}; fill_nan='ffill' has no earlier "
                             "value to carry forward")
        last = np.maximum.accumulate(np.where(np.isnan(x), -1, np.arange(x.size)))
        x = x[last]
    else:
        edge = nan[(nan < ok[0]) | (nan > ok[-1])]
        if edge.size:
            raise ValueError(f"{path}: column {name!r} has missing values at data rows "
                             f"{_rows_text((edge + 1).tolist())} before the first or after the last valid "
                             "value; fill_nan='interpolate' does not extrapolate")
        x[nan] = np.interp(nan, ok, x[ok])
    warnings.warn(f"{path}: filled {nan.size} missing value(s) in column {name!r} by {how} at data rows "
                  f"{_rows_text(rows)}", UserWarning, stacklevel=3)
    return x


def read_csv(path: str) -> Table:
    """Reads a CSV file whose first non-blank row is the header; fails on an empty or header-only file."""
    reader = csv.reader(io.StringIO(read_text_file(path, min_chars=0), newline=""))
    header, rows, lines = None, [], []
    for row in reader:
        if not row or all(not cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            continue
        rows.append({name: (row[j] if j < len(row) else None) for j, name in enumerate(header)})
        lines.append(reader.line_num)
    if header is None:
        raise ValueError(f"{path}: the file is empty (no header row)")
    if not rows:
        raise ValueError(f"{path}: the file has a header but no data rows")
    return Table(str(path), header, rows, lines)


def read_jsonl(path: str, fields: Sequence[str]) -> Table:
    """Reads a file of one JSON object per line (blank lines skipped); each must hold ``fields``."""
    rows, lines = [], []
    for line_no, line in enumerate(read_text_file(path, min_chars=0).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {line_no} of {path}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where} is not valid JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        missing = [f for f in fields if f not in obj]
        if missing:
            raise ValueError(f"{where} has no field(s) {missing}; its fields are {sorted(obj)}")
        rows.append(obj)
        lines.append(line_no)
    if not rows:
        raise ValueError(f"{path} holds no records")
    return Table(str(path), list(fields), rows, lines)
