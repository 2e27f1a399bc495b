"""Split files (format neurorvq-split 1): the JSON parts and folds forms, the benchmark's bare fold lists, CSV,
the round trip through save_split_file, every malformed-file message, and how listed values match the data's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurorvq.data.split_files import SplitFile, match_values, read_split_file, save_split_file
from neurorvq.errors import ConfigError

PARTS = {"format": "neurorvq-split", "version": 1, "by": "strat_fold",
         "splits": {"train": [1, 2, 3, 4, 5, 6, 7, 8], "val": [9], "test": [10]},
         "source": "PTB-XL 1.0.3, ptbxl_database.csv column strat_fold (recommended split)"}
FOLDS = {"format": "neurorvq-split", "version": 1, "by": "subject", "folds": {"0": ["S01", "S13"], "1": ["S08", "S14"]}}


def write(path: Path, content) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=1))
    return path


def error_of(path: Path, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        read_split_file(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and f"split file '{path}'" in message
    return message


# ------------------------------------------------------------------------------------------------ forms
def test_json_parts_and_folds_read_in_file_order(tmp_path):
    parts = read_split_file(write(tmp_path / "ptbxl.json", PARTS))
    assert (parts.by, parts.kind, parts.source) == ("strat_fold", "parts", PARTS["source"])
    assert parts.groups == {"train": [1, 2, 3, 4, 5, 6, 7, 8], "val": [9], "test": [10]}
    assert parts.where("test") == "key 'splits.test'"
    folds = read_split_file(write(tmp_path / "hgd.json", FOLDS), by="subject")
    assert (folds.kind, list(folds.groups), folds.groups["1"]) == ("folds", ["0", "1"], ["S08", "S14"])
    assert folds.where("1") == "key 'folds.1'" and folds.source is None


def test_the_benchmark_bare_form_needs_by(tmp_path):
    path = write(tmp_path / "kuerp.txt", '{\n "0": ["15", "16"],\n "1": ["21", "35"]\n}\n')
    split = read_split_file(path, by="subject")
    assert (split.by, split.kind, split.groups) == ("subject", "folds", {"0": ["15", "16"], "1": ["21", "35"]})
    assert split.where("1") == "key '1'"
    assert "is a bare list of folds (no 'by'); say which column its values belong to" in error_of(path)


def test_csv_parts_and_folds_with_comments_and_blank_lines(tmp_path):
    path = write(tmp_path / "bci.csv", "# source: BCI IV 2a, training and evaluation sessions\nsession,split\n"
                                       "T,train  # the first day\n\nE,test\n")
    split = read_split_file(path, by="session")
    assert (split.by, split.kind, split.groups) == ("session", "parts", {"train": ["T"], "test": ["E"]})
    assert split.source == "BCI IV 2a, training and evaluation sessions"
    assert split.where("train") == "line 3" and split.where("test", "E") == "line 5"
    folds = read_split_file(write(tmp_path / "f.csv", "subject,fold\nS01,0\nS02,1\nS03,0\n"))
    assert folds.kind == "folds" and folds.groups == {"0": ["S01", "S03"], "1": ["S02"]}
    assert folds.where("0") == "lines 2, 4" and folds.where("0", ["S03"]) == "line 4"


def test_save_round_trips(tmp_path):
    path = save_split_file(tmp_path / "sub" / "ptbxl.json", by="strat_fold", splits=PARTS["splits"],
                           source=PARTS["source"])
    assert json.loads(path.read_text()) == PARTS
    assert read_split_file(path) == SplitFile(str(path), "strat_fold", "parts", PARTS["splits"], PARTS["source"])
    folds = {"a": [np.int64(3), 1], "b": [np.str_("x")]}
    again = read_split_file(save_split_file(tmp_path / "f.json", by="run", folds=folds))
    assert again.groups == {"a": [3, 1], "b": ["x"]} and type(again.groups["a"][0]) is int
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed when complete


def test_save_refuses_what_read_would_refuse(tmp_path):
    with pytest.raises(ConfigError, match="key 'splits.tset': not a split name"):
        save_split_file(tmp_path / "x.json", by="subject", splits={"tset": [1]})
    with pytest.raises(ConfigError, match="give either splits= .* or folds="):
        save_split_file(tmp_path / "x.json", by="subject")
    with pytest.raises(ConfigError, match="writes JSON; name the file"):
        save_split_file(tmp_path / "x.csv", by="subject", folds={"0": [1]})
    with pytest.raises(ConfigError, match="subject 2 is in both keys 'splits.train' and 'splits.test'"):
        save_split_file(tmp_path / "x.json", by="subject", splits={"train": [1, 2], "test": [2]})
    assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------------------------------------ JSON errors
def test_missing_empty_and_unparsable_files(tmp_path):
    assert "does not exist" in error_of(tmp_path / "nope.json")
    assert "is empty" in error_of(write(tmp_path / "empty.json", "  \n"))
    assert "holds only comments" in error_of(write(tmp_path / "c.csv", "# nothing\n"))
    text = ('{\n "format": "neurorvq-split",\n "version": 1,\n "by": "subject",\n "folds": {\n  "0": ["S01"]\n'
            '  "1": []\n}}')
    assert error_of(write(tmp_path / "x.json", text)).endswith(
        "line 7, column 3: not JSON (Expecting ',' delimiter)")
    twice = '{"format": "neurorvq-split", "version": 1, "by": "s", "folds": {"0": [1], "0": [2]}}'
    assert "key '0' appears twice in one object" in error_of(write(tmp_path / "twice.json", twice))


@pytest.mark.parametrize("change, expected", [
    ({"splits": {"tset": [10]}}, "key 'splits.tset': not a split name (train, val, test); did you mean 'test'?"),
    ({"splits": {"test": "E"}}, "key 'splits.test': expected a list of values, got the string 'E'"),
    ({"splits": {"test": [1.5]}}, "key 'splits.test': item 0 is 1.5; values are strings or integers"),
    ({"format": "neurorvq-folds"}, "key 'format': 'neurorvq-folds' is not a split file (format 'neurorvq-split')"),
    ({"format": "neurorvq-subject-folds"}, "that is the folds.json of a neurorvq cv run"),
    ({"version": 2}, "key 'version': version 2 is newer than this neurorvq reads (1): upgrade neurorvq"),
    ({"version": "1"}, "key 'version': expected a positive integer, got '1'"),
    ({"by": ""}, "key 'by': expected the name of the column"),
    ({"fold": {}}, "key 'fold': not a split file key (format, version, by, splits, folds, source); did you mean "
                   "'folds'"),
    ({"folds": {"0": [1]}}, "holds both 'splits' and 'folds'; give one"),
    ({"splits": {}}, "key 'splits': expected a non-empty object"),
])
def test_malformed_json_names_the_key(tmp_path, change, expected):
    assert expected in error_of(write(tmp_path / "bad.json", {**PARTS, **change}))


def test_json_without_format_or_groups(tmp_path):
    assert "key 'format': missing" in error_of(write(tmp_path / "a.json", {"by": "subject", "folds": {"0": [1]}}))
    neither = {k: v for k, v in PARTS.items() if k != "splits"}
    assert "holds neither 'splits' nor 'folds'" in error_of(write(tmp_path / "b.json", neither))
    assert "key 'folds.1': the fold holds no values" in error_of(
        write(tmp_path / "c.json", {**FOLDS, "folds": {"0": [1], "1": []}}))


def test_another_by_than_asked(tmp_path):
    message = error_of(write(tmp_path / "hgd.json", FOLDS), by="session")
    assert "key 'by': the file splits by 'subject', but 'session' was asked for" in message
    message = error_of(write(tmp_path / "bci.csv", "session,split\nT,train\n"), by="subject")
    assert "header: the file splits by 'session', but 'subject' was asked for" in message


# ------------------------------------------------------------------------------------------------ CSV errors
@pytest.mark.parametrize("text, expected", [
    ("session,part\nT,train\n", "line 1: header must be '<column>,split' or '<column>,fold', got 'session,part'"),
    ("# a comment\nsession\n", "line 2: header must be '<column>,split' or '<column>,fold', got 'session'"),
    ("session,split\n", "has a header but no rows"),
    ("session,split\nT,train\nE,test\n\nX,val\nT,train,x\n", "line 6: 3 fields ('T,train,x'); expected 2 "
                                                             "(session,split)"),
    ("session,split\nT,train\nE,test\nA,val\nB,val\nC,tset\n", "line 6: split 'tset' is not train, val or test; "
                                                              "did you mean 'test'?"),
    ("session,split\nT,\n", "line 2: an empty field ('T,')"),
])
def test_malformed_csv_names_the_line(tmp_path, text, expected):
    assert expected in error_of(write(tmp_path / "bad.csv", text))


# ------------------------------------------------------------------------------------------------ overlaps
def test_a_value_in_two_parts_or_twice_in_one(tmp_path):
    csv = write(tmp_path / "bci.csv", "session,split\nT,train\nE,test\nE,train\n")
    assert error_of(csv).endswith("split file '" + str(csv) + "': session 'E' is in both 'test' (line 3) and "
                                  "'train' (line 4); a session belongs to one split")
    parts = {**PARTS, "splits": {"train": [1, 2], "test": [3, 1]}}
    assert ("strat_fold' value 1 is in both keys 'splits.train' and 'splits.test'; a 'strat_fold' value belongs to "
            "one split") in error_of(write(tmp_path / "p.json", parts))
    folds = {**FOLDS, "folds": {str(k): [f"S{k}"] for k in range(6)}}
    folds["folds"]["5"].append("S2")
    assert "subject 'S2' is in both folds '2' and '5'; a subject belongs to one fold" in error_of(
        write(tmp_path / "f.json", folds))
    assert "folds '0' (line 2) and '1' (line 3)" in error_of(write(tmp_path / "f.csv", "subject,fold\nS1,0\nS1,1\n"))
    assert "key 'splits.train': 'strat_fold' value 2 is listed twice in 'train'; list it once" in error_of(
        write(tmp_path / "d.json", {**PARTS, "splits": {"train": [1, 2, 2]}}))
    assert "lines 2, 4: session 'T' is listed twice in 'train'; list it once" in error_of(
        write(tmp_path / "d.csv", "session,split\nT,train\nE,test\nT,train\n"))


# ------------------------------------------------------------------------------------------------ matching
def test_matching_rules():
    data = ["S01", "S02", "s03"]
    assert match_values(["S01", "s02", "S03"], data, by="subject", where="w") == ["S01", "S02", "s03"]
    assert match_values(["3", "03", 7], np.array([3, 7]), by="run", where="w") == [3, 3, 7]
    assert match_values([1, 2], np.array(["1", "2"]), by="run", where="w") == ["1", "2"]
    assert type(match_values([np.int64(3)], [3], by="run", where="w")[0]) is int
    assert type(match_values(["a"], np.array(["a", "b"]), by="run", where="w")[0]) is str  # not np.str_
    ids = {"S01": 1, "S02": 2}
    assert match_values(["S02", "s01"], [1, 2], by="subject", where="w", ids=ids) == [2, 1]  # names -> ids
    assert match_values([2, "1"], ["S01", "S02"], by="subject", where="w", ids=ids) == ["S02", "S01"]  # ids -> names


def test_ambiguous_and_unknown_values():
    with pytest.raises(ConfigError, match=r"^w: 'AB' matches several values of the data by text ignoring case "
                                          r"\('Ab', 'aB'\); list the exact value"):
        match_values(["AB"], ["Ab", "aB"], by="run", where="w")
    known = [f"S{k:02d}" for k in range(1, 15)]
    with pytest.raises(ConfigError) as caught:
        match_values(["S03", "S15", "S16"], [k for k in known if k != "S03"], by="subject",
                     where="split file 'splits/hgd.json' key 'folds.3'")
    assert str(caught.value) == ("split file 'splits/hgd.json' key 'folds.3': subjects ['S03', 'S15', 'S16'] are not "
                                 "in the data (13 subjects found: 'S01', 'S02', 'S04', 'S05', 'S06', 'S07', 'S08', "
                                 "'S09', 'S10', 'S11', 'S12', 'S13', 'S14'); fix the file or load those subjects")
    many = list(range(100, 130))
    with pytest.raises(ConfigError, match=r"run 5 is not in the data \(30 runs found: 100, 101, .*, 119, \.\.\.\); "
                                          r"fix the file or load those runs"):
        match_values([5], many, by="run", where="w")
    with pytest.raises(ConfigError, match=r"values of 'strat_fold' \[11, 12\] are not in the data \(2 values of "
                                          r"'strat_fold' found: 1, 2\)"):
        match_values([11, 12, 1], [1, 2], by="strat_fold", where="w")


def test_split_file_match_names_the_place(tmp_path):
    split = read_split_file(write(tmp_path / "f.csv", "session,fold\nT,0\nE,1\nX,1\n"))
    with pytest.raises(ConfigError, match=r"f.csv' line 4: session 'X' is not in the data \(2 sessions found: 'E', "
                                          r"'T'\)"):
        split.match("1", np.array(["T", "E"]))
    assert split.match_all(["t", "e", "x"]) == {"0": ["t"], "1": ["e", "x"]}
    numbered = read_split_file(write(tmp_path / "s.json", {**FOLDS, "folds": {"0": [1], "1": ["S01"]}}))
    with pytest.raises(ConfigError, match=r"s.json': 1 \(key 'folds.0'\) and 'S01' \(key 'folds.1'\) are both "
                                          r"subject 'S01'; list it once"):
        numbered.match_all(["S01", "S02"], ids={"S01": 1, "S02": 2})
