"""Importing files into a shard: JSONL, CSV, or a folder of text files.

Each file (or folder) is one transaction: either every good record of it is stored or none is. A malformed line,
or a record that does not fit the shard's task (`client.datanet.check_record`: a missing or empty "text" or
"label"), is reported as `file:line: what is wrong`; by default any bad line rejects the whole file, with
`skip_bad` the bad lines are skipped and listed. CSV is read strictly: a broken quote stops the file at the row
where it starts (the reader cannot find the next row after it), and bytes that are not UTF-8 name their row.
Duplicates (already in the shard, or repeated in the file) are counted, not stored twice. Records are streamed:
memory stays bounded whatever the file size.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from client.datanet import TASKS, check_record
from client.errors import ImportRejected
from client.records import MAX_RECORD_BYTES, RecordError, make_record, parse_json_object
from storage.shard import NewRecord, Shard

logger = logging.getLogger(__name__)

Format = Literal["jsonl", "csv", "text"]
ProgressCallback = Callable[[int, int], None]  # (bytes read, total bytes)
BATCH = 1000
MAX_LISTED_PROBLEMS = 50
_SUFFIXES: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "text", ".md": "text"}
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of bytes that are not UTF-8


@dataclass(slots=True)
class ImportSummary:
    path: str
    added: int = 0
    duplicates: int = 0
    already_received: int = 0  # of the duplicates, those received from a peer earlier (they stay received)
    skipped: list[str] = field(default_factory=list)  # `file:line: problem`, when skip_bad: the first 50
    skipped_count: int = 0  # every bad line skipped (a file of millions of bad lines lists 50, counts them all)

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.path,
            "added": self.added,
            "duplicates": self.duplicates,
            "already_received": self.already_received,
            "skipped": self.skipped,
            "skipped_count": self.skipped_count,
        }


@dataclass(slots=True)
class _BadLines:
    """A file's bad lines: every one counted, the first MAX_LISTED_PROBLEMS kept (memory stays bounded)."""

    label: str
    listed: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, line: int, problem: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_PROBLEMS:
            self.listed.append(f"{self.label}:{line}: {problem}")


@dataclass(frozen=True, slots=True)
class _Item:
    line: int
    record: NewRecord | None
    problem: str | None


def detect_format(path: Path) -> Format:
    if path.is_dir():
        return "text"
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ImportRejected(
            f"{path}: cannot tell the format from the name; use .jsonl, .csv, .txt or a folder, or pass --format.",
            [],
        )
    return fmt


def _new_record(obj: dict[str, Any], task: str | None, source: str) -> NewRecord:
    """Raises RecordError if `obj` is not a record, or does not fit `task` (None: its form alone is checked)."""
    record = make_record(obj)
    if task is not None:
        check_record(task, obj)
    return NewRecord(record.record_id, record.body, source)


def _jsonl_items(path: Path, task: str | None, progress: ProgressCallback | None) -> Iterator[_Item]:
    total = path.stat().st_size
    with path.open("rb") as handle:
        line_no = 0
        done = 0
        while True:
            raw = handle.readline(MAX_RECORD_BYTES + 2)
            if not raw:
                break
            line_no += 1
            done += len(raw)
            if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of an oversized line
                    raw = handle.readline(1 << 20)
                    done += len(raw)
                yield _Item(line_no, None, f"line longer than {MAX_RECORD_BYTES} bytes")
                continue
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if progress is not None and line_no % BATCH == 0:
                progress(done, total)
            if not raw.strip():
                continue
            try:
                obj = parse_json_object(raw.rstrip(b"\r\n").decode("utf-8"))
                record = _new_record(obj, task, f"{path.name}:{line_no}")
            except UnicodeDecodeError:
                yield _Item(line_no, None, "not valid UTF-8")
            except RecordError as exc:
                yield _Item(line_no, None, str(exc))
            else:
                yield _Item(line_no, record, None)
        if progress is not None:
            progress(total, total)


class _LineTooLong(Exception):
    pass


def _bounded_lines(text: io.TextIOWrapper) -> Iterator[str]:
    """The file's lines for the CSV reader, none longer than a record may be: a file with no line break for
    gigabytes is refused at MAX_RECORD_BYTES instead of being read into memory whole."""
    while True:
        line = text.readline(MAX_RECORD_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_RECORD_BYTES:
            raise _LineTooLong
        yield line


def _csv_items(path: Path, task: str | None, progress: ProgressCallback | None) -> Iterator[_Item]:
    total = path.stat().st_size
    with path.open("rb") as binary:
        # Bytes that are not UTF-8 become lone surrogates, found per row below: decoding strictly would fail a
        # whole buffered chunk at once, far from the row that holds them.
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
        csv.field_size_limit(MAX_RECORD_BYTES)  # a field as large as a record may be (the default is 128 KiB)
        reader = csv.reader(_bounded_lines(text), strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Item(1, None, f"cannot read the header ({exc})")
            return
        except _LineTooLong:
            yield _Item(1, None, f"the header is longer than {MAX_RECORD_BYTES} bytes")
            return
        if any(_UNDECODABLE.search(name) for name in header):
            yield _Item(1, None, "cannot read the header (not valid UTF-8)")
            return
        names = [name.strip() for name in header]
        if any(not name for name in names) or len(set(names)) != len(names):
            yield _Item(1, None, "the header needs a distinct, non-empty name for every column")
            return
        while True:
            line_no = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield _Item(line_no, None, f"broken quoting ({exc}); nothing after this row can be read")
                return  # the reader cannot find where the next row starts
            except _LineTooLong:
                yield _Item(line_no, None, f"line longer than {MAX_RECORD_BYTES} bytes; nothing after it can be read")
                return
            if any(_UNDECODABLE.search(cell) for cell in row):
                yield _Item(line_no, None, "not valid UTF-8")
                continue
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                yield _Item(line_no, None, f"expected {len(names)} fields, found {len(row)}")
                continue
            try:
                record = _new_record(dict(zip(names, row, strict=True)), task, f"{path.name}:{line_no}")
            except RecordError as exc:
                yield _Item(line_no, None, str(exc))
                continue
            yield _Item(line_no, record, None)
            if progress is not None and line_no % BATCH == 0:
                progress(binary.tell(), total)
    if progress is not None:
        progress(total, total)


def _text_items(path: Path, task: str | None, progress: ProgressCallback | None) -> Iterator[_Item]:
    if path.is_file():
        files = [path]
    else:  # hidden files and folders (.git, .DS_Store) are not data; links are listed, and refused below
        files = sorted(
            p
            for p in path.rglob("*")
            if (p.is_symlink() or p.is_file()) and not any(s.startswith(".") for s in p.relative_to(path).parts)
        )
    for index, file in enumerate(files, start=1):
        name = file.name if file == path else str(file.relative_to(path.parent))
        if file != path and file.is_symlink():  # it could point anywhere (~/.ssh, /etc): never followed
            yield _Item(index, None, f"{name}: a symbolic link, not followed")
            continue
        if file.stat().st_size > MAX_RECORD_BYTES:
            yield _Item(index, None, f"{name}: larger than {MAX_RECORD_BYTES} bytes")
            continue
        try:
            record = _new_record({"text": file.read_bytes().decode("utf-8-sig")}, task, name)
        except UnicodeDecodeError:
            yield _Item(index, None, f"{name}: not UTF-8 text")
            continue
        except RecordError as exc:
            yield _Item(index, None, f"{name}: {exc}")
            continue
        yield _Item(index, record, None)
        if progress is not None:
            progress(index, len(files))


def _items(path: Path, fmt: Format, task: str | None, progress: ProgressCallback | None) -> Iterator[_Item]:
    if fmt == "jsonl":
        return _jsonl_items(path, task, progress)
    if fmt == "csv":
        return _csv_items(path, task, progress)
    return _text_items(path, task, progress)


def _check_task(path: Path, task: str) -> None:
    if task not in TASKS:
        raise ImportRejected(
            f"{path}: this version of datanet does not know the {task!r} task; upgrade datanet to read it.",
            [],
        )


def import_path(
    shard: Shard,
    path: Path,
    *,
    fmt: Format | None = None,
    skip_bad: bool = False,
    progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Import one file or folder into `shard` in one transaction; raises ImportRejected if any record is bad or
    does not fit the shard's task (unless `skip_bad`), leaving the shard unchanged."""
    if not path.exists():
        raise ImportRejected(f"{path}: no such file or folder.", [])
    task = shard.info.task
    _check_task(path, task)
    fmt = fmt or detect_format(path)
    label = str(path)
    summary = ImportSummary(label)
    bad = _BadLines(label)
    with shard.transaction() as writer:
        batch: list[NewRecord] = []
        for item in _items(path, fmt, task, progress):
            if item.problem is not None:
                bad.add(item.line, item.problem)
                continue
            if bad.count and not skip_bad:
                continue  # keep reading only to count every bad line
            assert item.record is not None
            batch.append(item.record)
            if len(batch) >= BATCH:
                writer.add(batch)
                batch.clear()
        if bad.count and not skip_bad:
            raise ImportRejected(
                f"{label} was not imported: {bad.count} malformed record(s)"
                + (f" (first {len(bad.listed)} listed)" if bad.count > len(bad.listed) else "")
                + "; fix them, or pass --skip-bad to import the rest.",
                bad.listed,
            )
        writer.add(batch)
    summary.added, summary.duplicates, summary.skipped = writer.added, writer.duplicates, bad.listed
    summary.skipped_count = bad.count
    summary.already_received = writer.already_received
    logger.info("imported %s: %d added, %d duplicates, %d skipped", label, writer.added, writer.duplicates, bad.count)
    return summary


def read_rows(path: Path, fmt: Format | None = None, *, task: str | None = None) -> list[tuple[bytes, bytes]]:
    """(record id, canonical body) of every record in a file, without a shard (e.g. a public evaluation split);
    with `task`, every record must also fit that task."""
    if not path.exists():
        raise ImportRejected(f"{path}: no such file or folder.", [])
    if task is not None:
        _check_task(path, task)
    rows: list[tuple[bytes, bytes]] = []
    bad = _BadLines(str(path))
    for item in _items(path, fmt or detect_format(path), task, None):
        if item.problem is not None:
            bad.add(item.line, item.problem)
        elif item.record is not None:
            rows.append((item.record.record_id, item.record.body))
    if bad.count:
        raise ImportRejected(f"{path} has {bad.count} malformed record(s); fix them first.", bad.listed)
    return rows
