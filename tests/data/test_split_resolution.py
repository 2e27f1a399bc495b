"""Splits as data (issue 13): a DataModule resolves the split of every recording or window before loading, from
subject fractions, a metadata column or a split file; the columns travel with every window, in memory and in
the cache; each bad input is one clear error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_windows import FakeModule  # noqa: E402

from neurorvq.data.preprocess import DataError, Recording  # noqa: E402
from neurorvq.data.recording import RecordingInfo  # noqa: E402
from neurorvq.data.split_files import save_split_file  # noqa: E402
from neurorvq.data.split_rules import SplitRule  # noqa: E402
from neurorvq.errors import ConfigError  # noqa: E402


class SessionModule(FakeModule):
    """Files <subject>_<session>.rec; each recording gives 4 one-second windows with trials 1..4 (a window column)
    and its session (a recording column)."""

    window_columns = ("trial",)

    def find_recordings(self):
        return [RecordingInfo(p, p.stem.split("_")[0], columns={"session": p.stem.split("_")[1]})
                for p in sorted(self.root.glob("*.rec"))]

    def load_windows(self, info, pipeline):
        names = list(self.spec.channels[:2])
        data = np.random.default_rng(len(str(info.path))).normal(0, 20, (2, 4 * 200)).astype(np.float32)
        recording = Recording(data, names, 200.0, "uV", str(info.path))
        return [self.cut(recording, info, labels=[0, 1, 0, 1], columns={"trial": [1, 2, 3, 4]})]


SUBJECTS = [f"S{k:02d}" for k in range(1, 7)]


@pytest.fixture()
def root(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for s in SUBJECTS:
        for session in ("T", "E"):
            (folder / f"{s}_{session}.rec").touch()
    return folder


def _module(root, **kwargs):
    return SessionModule(str(root), window_seconds=1.0, batch_size=4, verbose=False, **kwargs)


def _sessions(dm, split):
    return set(dm.window_table(split)["session"].tolist())


def test_default_subject_fractions_are_unchanged_and_columns_reach_every_window(root):
    dm = _module(root, val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    assert sum(len(v) for v in dm.splits.values()) == 6 and not set(dm.splits["val"]) & set(dm.splits["test"])
    table = dm.window_table("train")
    assert set(table) >= {"subject", "recording", "start", "label", "session", "trial"}
    assert table["trial"].tolist()[:4] == [1, 2, 3, 4] and _sessions(dm, "train") == {"E", "T"}
    assert "split" not in dm.summary  # the subject split reports its subjects, as before


def test_split_by_a_recording_column_inline(root):
    dm = _module(root, split={"by": "session", "test": ["e"], "val": []})  # matched case-insensitively
    dm.setup()
    assert _sessions(dm, "test") == {"E"} and _sessions(dm, "train") == {"T"} and len(dm.datasets["val"]) == 0
    assert dm.splits["test"] == SUBJECTS and dm.summary["split"]["test"] == ["E"]
    assert dm.hparams["split"]["by"] == "session"  # a plain dict in hparams and checkpoints


def test_split_by_a_window_column_routes_windows(root):
    dm = _module(root, split=SplitRule(by="trial", val=[2], test=[3, 4]))
    dm.setup()
    assert sorted(set(dm.window_table("train")["trial"].tolist())) == [1]
    assert sorted(set(dm.window_table("val")["trial"].tolist())) == [2]
    assert sorted(set(dm.window_table("test")["trial"].tolist())) == [3, 4]
    assert dm.summary["windows"] == {"train": 12, "val": 12, "test": 24}


def test_split_files_json_csv_and_a_fold(root, tmp_path):
    path = save_split_file(tmp_path / "s.json", by="subject", splits={"train": SUBJECTS[:4], "val": ["S05"],
                                                                     "test": ["S06"]})
    dm = _module(root, split=str(path))
    dm.setup()
    assert dm.splits == {"train": SUBJECTS[:4], "val": ["S05"], "test": ["S06"]}
    csv = tmp_path / "s.csv"
    csv.write_text("session,split\nT,train\nE,test\n")
    dm = _module(root, split=str(csv))
    dm.setup()
    assert _sessions(dm, "test") == {"E"} and _sessions(dm, "train") == {"T"}
    folds = save_split_file(tmp_path / "f.json", by="subject", folds={"0": ["S01", "S02"], "1": ["S03", "S04"],
                                                                      "2": ["S05", "S06"]})
    dm = _module(root, split={"file": str(folds), "fold": "1"}, val_fraction=0.25)
    dm.setup()
    assert dm.splits["test"] == ["S03", "S04"] and len(dm.splits["val"]) == 1
    assert not set(dm.splits["val"]) & {"S03", "S04"}


def test_bad_split_inputs_are_one_clear_error(root, tmp_path):
    with pytest.raises(ConfigError, match=r"split by 'sesion': the recordings have no column 'sesion' \(did you "
                                          r"mean 'session'\?\); columns: recording, subject, subject_id, session"):
        _module(root, split={"by": "sesion", "test": ["E"]}).setup()
    bad = save_split_file(tmp_path / "bad.json", by="subject", splits={"train": ["S01"], "test": ["S03", "S09"]})
    with pytest.raises(ConfigError, match=r"bad\.json' key 'splits\.test': subject 'S09' is not in the data \(6 "
                                          r"subjects found"):
        _module(root, split=str(bad)).setup()
    with pytest.raises(ConfigError, match=r"'E' is in both 'val' and 'test'"):
        _module(root, split={"by": "session", "val": ["E"], "test": ["E"]}).setup()
    with pytest.raises(ConfigError, match="per-window column\\) needs explicit train/val/test lists"):
        _module(root, split={"by": "trial", "test_fraction": 0.5}).setup()
    with pytest.raises(ConfigError, match="split is 'nope.json': no such split file"):
        _module(root, split="nope.json")
    with pytest.raises(ConfigError, match="split and val_subjects/test_subjects are both given"):
        _module(root, split={"by": "session", "test": ["E"]}, test_subjects=["S01"])
    with pytest.raises(ConfigError, match="split has no field 'tset' \\(did you mean 'test'\\?\\)"):
        _module(root, split={"by": "session", "tset": ["E"]})


def test_disjoint_column_is_enforced(root):
    with pytest.raises(DataError, match=r"subject S01 has records in the (train|test) split .* and the (test|train) "
                                        r"split .* a subject belongs to one split"):
        _module(root, split={"by": "session", "test": ["E"], "val": [], "disjoint": "subject"}).setup()


def test_resolve_plan_loads_nothing(root):
    class Refusing(SessionModule):
        def load_windows(self, info, pipeline):
            raise AssertionError("resolve_plan must not load")

    plan = Refusing(str(root), window_seconds=1.0, verbose=False, split={"by": "session", "test": ["E"]}).resolve_plan()
    assert plan.values["test"] == ["E"] and plan.level == "recording"
    assert sorted(set(plan.parts_of.values())) == [("test",), ("train",)]


@pytest.mark.parametrize("split", [{"by": "session", "test": ["E"], "val": []},
                                   {"by": "trial", "val": [2], "test": [4]}], ids=["recording", "window"])
def test_the_cache_holds_the_split_and_the_columns(root, tmp_path, split):
    memory = _module(root, split=split)
    memory.setup()
    cached = _module(root, split=split, cache_dir=str(tmp_path / "cache"))
    cached.prepare_data()
    cached.setup()
    from neurorvq.data.cache import StreamingWindows

    for part in ("train", "val", "test"):
        index = cached.caches[part]
        assert index.total_windows == len(memory.datasets[part])
        if not index.total_windows:
            continue
        streamed = sorted((w["recording"], w["start"], w["columns"]["session"], w["columns"]["trial"])
                          for w in StreamingWindows(index, with_meta=True))
        table = memory.window_table(part)
        assert streamed == sorted(zip(table["recording"].tolist(), table["start"].tolist(),
                                      table["session"].tolist(), table["trial"].tolist()))
        doc = json.loads((Path(index.location) / "index.json").read_text())
        assert doc["columns"] == {"session": "str", "trial": "int"}
