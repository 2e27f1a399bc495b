"""docs/paper-tables.md stays true to the code: every option it lists is an option of ``neurorvq benchmark``, every
row of its EEG table is a row of the built-in table with that split file, and its example table file reads."""

from __future__ import annotations

import re
from pathlib import Path

from neurorvq.benchmarks.tables import get_table, read_table
from neurorvq.cli.benchmark import benchmark_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "paper-tables.md"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end > 0 else None]


def test_every_listed_option_is_an_option_of_the_command():
    listed = set(re.findall(r"^\| `(--[a-z_]+)", _section("## Options"), flags=re.M))
    known = {name for action in benchmark_parser()._actions for name in action.option_strings}
    assert {"--table", "--model", "--protocol", "--seeds", "--rows", "--data_dir", "--root", "--out"} <= listed
    assert listed <= known, sorted(listed - known)


def test_the_eeg_rows_and_their_split_files_are_the_built_in_table():
    section = _section("## The EEG table")
    documented = re.findall(r"^\| `([a-z_]+)` \|.*?`neurorvq/splits/([a-z_]+)\.json`", section, flags=re.M)
    table = get_table("eeg")
    assert [key for key, _ in documented] == [row.key for row in table.rows]
    assert {key: split for key, split in documented} == {row.key: row.split for row in table.rows}


def test_the_example_table_file_reads(tmp_path):
    block = re.search(r"```yaml\n(.*?)```", _section("## Your own table"), flags=re.S).group(1)
    path = tmp_path / "my_table.yaml"
    path.write_text(block)
    table = read_table(path)
    assert table.key == "my-table" and [row.key for row in table.rows] == ["eyes"]


def test_every_row_of_every_table_is_documented():
    from neurorvq.benchmarks.tables import TABLES

    text = DOC.read_text(encoding="utf-8")
    for name in TABLES:
        for row in get_table(name).rows:
            assert f"| `{row.key}` |" in text, f"docs/paper-tables.md does not describe row {name}/{row.key}"
