"""`kameng churn evaluate`: read a purchase log and evaluate the repeat-buying model on it
(resolvers/lifecycle/evaluation.py does the work).

Formats: ``cdnow``, the CDNOW master log (whitespace-separated customer id, yyyymmdd date,
quantity, amount; a header line is skipped); ``csv``, a header with ``user``, ``time`` (an
ISO date or date-time) and ``amount`` columns, in any order, other columns ignored.
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path


def _parse_time(value: str) -> date:
    value = value.strip()
    if len(value) == 8 and value.isdigit():
        return datetime.strptime(value, "%Y%m%d").date()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).date()


def read_cdnow(path: Path) -> list[tuple[str, date, float]]:
    rows: list[tuple[str, date, float]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 4 or not parts[1].isdigit():
                if number == 1:
                    continue  # the header
                raise ValueError(f"line {number}: expected customer, yyyymmdd, quantity, amount")
            rows.append((parts[0], _parse_time(parts[1]), float(parts[3])))
    return rows


def read_csv(path: Path) -> list[tuple[str, date, float]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"user", "time", "amount"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
        rows = []
        for number, row in enumerate(reader, 2):
            try:
                rows.append((row["user"], _parse_time(row["time"]), float(row["amount"] or 0)))
            except ValueError as exc:
                raise ValueError(f"row {number}: {exc}") from None
    return rows


def read(path: Path, fmt: str) -> list[tuple[str, date, float]]:
    if fmt == "cdnow":
        return read_cdnow(path)
    if fmt == "csv":
        return read_csv(path)
    raise ValueError(f"unknown format {fmt!r} (cdnow or csv)")
