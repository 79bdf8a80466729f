"""Importing JSONL, CSV and text folders: one transaction per file, errors that name file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.errors import ImportRejected
from client.importers import import_path, read_rows
from client.records import MAX_RECORD_BYTES, make_record
from storage.shard import Shard
from storage.vault import Vault
from tests.conftest import FAST_ARGON2


@pytest.fixture
def vault(data_dir: Path) -> Vault:
    vault, _ = Vault.create(data_dir, keystore=None, passphrase="pw-pw-pw", argon2=FAST_ARGON2)
    return vault


@pytest.fixture
def shard(vault: Vault) -> Iterator[Shard]:
    with vault.create_shard("s", "text") as shard:
        yield shard


@pytest.fixture
def intents(vault: Vault) -> Iterator[Shard]:
    with vault.create_shard("intents", "intent-classification") as shard:
        yield shard


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_jsonl_import_with_duplicates_blank_lines_and_bom(shard: Shard, tmp_path: Path) -> None:
    f = _write(tmp_path / "a.jsonl", '\ufeff{"text": "one"}\n\n{"text":"two"}\n{"text": "one"}\n')
    summary = import_path(shard, f)
    assert (summary.added, summary.duplicates) == (2, 1)
    again = import_path(shard, f)
    assert (again.added, again.duplicates) == (0, 3)
    assert shard.count() == 2
    sources = sorted(m.source for m in shard.list_records())
    assert sources == ["a.jsonl:1", "a.jsonl:3"]


def test_a_bad_line_rejects_the_whole_file_naming_file_and_line(shard: Shard, tmp_path: Path) -> None:
    f = _write(tmp_path / "b.jsonl", '{"text": "ok"}\n{"text": \n[1]\n{"text": "fine"}\n\xff\n'.encode("latin-1"))
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, f)
    assert caught.value.problems == [
        f"{f}:2: invalid JSON (Expecting value at column 10)",
        f"{f}:3: a record must be a JSON object, not list",
        f"{f}:5: not valid UTF-8",
    ]
    assert "--skip-bad" in str(caught.value)
    assert shard.count() == 0


def test_skip_bad_imports_the_rest_and_lists_the_bad_lines(shard: Shard, tmp_path: Path) -> None:
    f = _write(tmp_path / "c.jsonl", '{"text": "ok"}\n{"text": NaN}\n{"text": "fine"}\n')
    summary = import_path(shard, f, skip_bad=True)
    assert summary.added == 2
    assert summary.skipped == [f"{f}:2: NaN is not a JSON number"]


def test_an_oversized_line_is_a_problem_not_a_memory_blowup(shard: Shard, tmp_path: Path) -> None:
    big = '{"text": "' + "x" * (MAX_RECORD_BYTES + 10) + '"}\n'
    f = _write(tmp_path / "d.jsonl", '{"text": "small"}\n' + big + '{"text": "after"}\n')
    summary = import_path(shard, f, skip_bad=True)
    assert summary.added == 2
    assert summary.skipped == [f"{f}:2: line longer than {MAX_RECORD_BYTES} bytes"]


def test_csv_rows_become_objects_keyed_by_the_header(shard: Shard, tmp_path: Path) -> None:
    f = _write(tmp_path / "e.csv", 'text,label\n"Hello, world",greet\n"multi\nline",other\n\n')
    summary = import_path(shard, f)
    assert summary.added == 2
    bodies = [json.loads(body) for _, body in shard.iter_bodies()]
    assert bodies == [{"text": "Hello, world", "label": "greet"}, {"text": "multi\nline", "label": "other"}]
    assert [m.source for m in shard.list_records()] == ["e.csv:2", "e.csv:3"]


def test_csv_and_jsonl_of_the_same_object_share_an_id(shard: Shard, tmp_path: Path) -> None:
    import_path(shard, _write(tmp_path / "f.csv", "text,label\nhi,greet\n"))
    summary = import_path(shard, _write(tmp_path / "f.jsonl", '{"label": "greet", "text": "hi"}\n'))
    assert (summary.added, summary.duplicates) == (0, 1)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("text,label\nonly-one-field\n", "2: expected 2 fields, found 1"),
        ("text,text\na,b\n", "1: the header needs a distinct, non-empty name"),
        ("text,\na,b\n", "1: the header needs a distinct, non-empty name"),
    ],
)
def test_csv_problems(shard: Shard, tmp_path: Path, content: str, problem: str) -> None:
    f = _write(tmp_path / "g.csv", content)
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, f)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{f}:{problem}")
    assert shard.count() == 0


def test_text_folder(shard: Shard, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    _write(folder / "a.txt", "first note")
    _write(folder / "sub" / "b.md", "second note")
    _write(folder / ".hidden", "not data")
    summary = import_path(shard, folder)
    assert summary.added == 2
    assert sorted(m.source for m in shard.list_records()) == ["notes/a.txt", "notes/sub/b.md"]
    texts = sorted(json.loads(body)["text"] for _, body in shard.iter_bodies())
    assert texts == ["first note", "second note"]
    assert make_record({"text": "first note"}).record_id in {m.record_id for m in shard.list_records()}


def test_text_folder_with_a_binary_file_is_rejected_whole(shard: Shard, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    _write(folder / "a.txt", "fine")
    _write(folder / "b.bin", b"\x89PNG\xff\xfe")
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, folder)
    assert caught.value.problems == [f"{folder}:2: mixed/b.bin: not UTF-8 text"]
    assert shard.count() == 0


def test_unknown_format_and_missing_file(shard: Shard, tmp_path: Path) -> None:
    with pytest.raises(ImportRejected, match="cannot tell the format"):
        import_path(shard, _write(tmp_path / "x.parquet", b"PAR1"))
    with pytest.raises(ImportRejected, match="no such file"):
        import_path(shard, tmp_path / "missing.jsonl")


def test_records_that_do_not_fit_the_task_reject_the_file_naming_file_and_line(intents: Shard, tmp_path: Path) -> None:
    f = _write(
        tmp_path / "h.jsonl",
        '{"text": "book me in", "label": "book"}\n{"text": "no label"}\n{"text": "", "label": "x"}\n'
        '{"text": "hi", "label": 3}\n{"text": "fine", "label": "ok", "clinic": "north"}\n',
    )
    with pytest.raises(ImportRejected) as caught:
        import_path(intents, f)
    assert caught.value.problems == [
        f'{f}:2: the intent-classification task needs a "label" field',
        f'{f}:3: "text" is empty',
        f'{f}:4: "label" must be text, not a number',
    ]
    assert intents.count() == 0
    summary = import_path(intents, f, skip_bad=True)
    assert (summary.added, len(summary.skipped)) == (2, 3)


def test_csv_rows_and_text_files_are_checked_against_the_task(intents: Shard, shard: Shard, tmp_path: Path) -> None:
    f = _write(tmp_path / "i.csv", "text,label\nhi,greet\nno label here,\n")
    with pytest.raises(ImportRejected) as caught:
        import_path(intents, f)
    assert caught.value.problems == [f'{f}:3: "label" is empty']
    g = _write(tmp_path / "j.csv", "text\nhello\n")
    with pytest.raises(ImportRejected) as caught:
        import_path(intents, g)
    assert caught.value.problems == [f'{g}:2: the intent-classification task needs a "label" field']
    folder = tmp_path / "notes"
    folder.mkdir()
    _write(folder / "a.txt", "a note")
    _write(folder / "b.txt", " \n")
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, folder)
    assert caught.value.problems == [f'{folder}:2: notes/b.txt: "text" is empty']
    with pytest.raises(ImportRejected) as caught:
        import_path(intents, folder / "a.txt")
    assert caught.value.problems == [
        f'{folder / "a.txt"}:1: a.txt: the intent-classification task needs a "label" field'
    ]
    assert (intents.count(), shard.count()) == (0, 0)


def test_read_rows_checks_the_task_only_when_given_one(tmp_path: Path) -> None:
    f = _write(tmp_path / "eval.jsonl", '{"text": "hi"}\n')
    assert len(read_rows(f)) == 1
    assert len(read_rows(f, task="text")) == 1
    with pytest.raises(ImportRejected) as caught:
        read_rows(f, task="intent-classification")
    assert caught.value.problems == [f'{f}:1: the intent-classification task needs a "label" field']
    with pytest.raises(ImportRejected, match="does not know the 'translation' task"):
        read_rows(f, task="translation")


def test_a_shard_of_an_unknown_task_takes_nothing(vault: Vault, tmp_path: Path) -> None:
    f = _write(tmp_path / "k.jsonl", '{"text": "hi", "label": "x"}\n')
    with vault.create_shard("future", "translation") as future:
        with pytest.raises(ImportRejected, match="does not know the 'translation' task; upgrade datanet"):
            import_path(future, f)
        assert future.count() == 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        # An unclosed quote would otherwise swallow every later line into one field of one record.
        ('text\nfirst\n"unterminated\nsecond\nthird\n', "3: broken quoting (unexpected end of data)"),
        ('text,label\nok,a\n"broken,b\nmore,c\n', "3: broken quoting (unexpected end of data)"),
        ('text,label\nok,a\n"quoted"tail,b\nmore,c\n', "3: broken quoting (',' expected after '\"')"),
    ],
)
def test_a_broken_csv_quote_names_its_row_and_stores_nothing(
    shard: Shard, tmp_path: Path, content: str, problem: str
) -> None:
    f = _write(tmp_path / "q.csv", content)
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, f)
    assert caught.value.problems == [f"{f}:{problem}; nothing after this row can be read"]
    assert shard.count() == 0
    skipped = import_path(shard, f, skip_bad=True)  # only the rows before the break; never what it swallowed
    assert skipped.added == 1
    assert [json.loads(body)["text"] for _, body in shard.iter_bodies()] == ["first" if "first" in content else "ok"]


@pytest.mark.parametrize("rows_before", [1, 3000])  # 3000 rows: past the first buffered chunk of text
def test_bad_utf8_in_a_csv_names_its_row_and_stores_nothing(shard: Shard, tmp_path: Path, rows_before: int) -> None:
    good = "".join(f"row {i},x\n" for i in range(rows_before)).encode()
    f = _write(tmp_path / "u.csv", b"text,label\n" + good + b"caf\xe9,x\nafter,x\n")
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, f)
    assert caught.value.problems == [f"{f}:{rows_before + 2}: not valid UTF-8"]
    assert shard.count() == 0
    assert import_path(shard, f, skip_bad=True).added == rows_before + 1


def test_bad_utf8_in_a_csv_header_is_named(shard: Shard, tmp_path: Path) -> None:
    f = _write(tmp_path / "v.csv", b"te\xffxt,label\nhi,x\n")
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, f)
    assert caught.value.problems == [f"{f}:1: cannot read the header (not valid UTF-8)"]
    assert shard.count() == 0


def test_bad_utf8_inside_a_jsonl_string_names_its_line_and_stores_nothing(shard: Shard, tmp_path: Path) -> None:
    f = _write(tmp_path / "w.jsonl", b'{"text": "fine"}\n{"text": "caf\xe9"}\n{"text": "also fine"}\n')
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, f)
    assert caught.value.problems == [f"{f}:2: not valid UTF-8"]
    assert shard.count() == 0


def test_a_folder_import_never_follows_a_symbolic_link(shard: Shard, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the server's private notes")
    (outside / "more").mkdir()
    (outside / "more" / "notes.txt").write_text("more private notes")
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("a note that belongs here")
    (folder / "link.txt").symlink_to(outside / "secret.txt")
    (folder / "dir").symlink_to(outside / "more", target_is_directory=True)
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, folder)
    assert sorted(caught.value.problems) == [
        f"{folder}:2: notes/dir: a symbolic link, not followed",
        f"{folder}:3: notes/link.txt: a symbolic link, not followed",
    ]
    summary = import_path(shard, folder, skip_bad=True)
    assert summary.added == 1 and summary.skipped_count == 2
    assert [json.loads(body)["text"] for _, body in shard.iter_bodies()] == ["a note that belongs here"]


def test_a_csv_line_over_the_limit_is_refused_with_bounded_memory(shard: Shard, tmp_path: Path) -> None:
    f = tmp_path / "big.csv"
    with f.open("w") as out:
        out.write("text,label\nfine,a\n")
        out.write("x" * (3 * MAX_RECORD_BYTES))  # no line break for 3 MiB
        out.write(",b\nafter,c\n")
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, f)
    assert caught.value.problems == [f"{f}:3: line longer than {MAX_RECORD_BYTES} bytes; nothing after it can be read"]
    assert shard.count() == 0


def test_the_list_of_bad_lines_is_capped_and_they_are_all_counted(shard: Shard, tmp_path: Path) -> None:
    f = tmp_path / "mostly-bad.jsonl"
    f.write_text('{"text": "good"}\n' + "not json\n" * 300)
    with pytest.raises(ImportRejected) as caught:
        import_path(shard, f)
    assert "300 malformed record(s) (first 50 listed)" in str(caught.value)
    assert len(caught.value.problems) == 50
    summary = import_path(shard, f, skip_bad=True)
    assert (summary.added, summary.skipped_count, len(summary.skipped)) == (1, 300, 50)
    assert summary.as_dict()["skipped_count"] == 300
