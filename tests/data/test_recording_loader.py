"""Loading in worker processes (issue 13): a picklable loader rebuilds the DataModule from its init arguments;
only data problems skip a recording, a bug in ``load_windows`` raises naming the file; what a loader notes and
the windows' columns survive worker processes."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_windows import FakeModule, fake_root  # noqa: E402

from neurorvq.data.preprocess import DataError, Recording  # noqa: E402
from neurorvq.data.recording import RecordingLoader, RecordingSkippedWarning  # noqa: E402


class BuggyModule(FakeModule):
    """'bad' files are a data problem (skipped); 'bug' files hit a programming error (KeyError)."""

    def load_windows(self, info, pipeline):
        if "bug" in info.path.name:
            return {}["missing key"]
        return super().load_windows(info, pipeline)


class NotingModule(FakeModule):
    def load_windows(self, info, pipeline):
        self.note("lengths", info.path.name, 3)
        names = list(self.spec.channels[:2])
        data = np.random.default_rng(0).normal(0, 20, (2, 3 * 200)).astype(np.float32)
        recording = Recording(data, names, 200.0, "uV", str(info.path))
        return [self.cut(recording, info, labels=[0], columns={"trial": [7, 8, 9]})]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bug_in_load_windows_raises_naming_the_file(tmp_path, workers):
    root = fake_root(tmp_path, ["sub1_0.rec", "sub2_0.rec", "sub3_bug.rec"])
    dm = BuggyModule(str(root), window_seconds=1.0, num_workers=workers, verbose=False, val_fraction=0,
                     test_fraction=0)
    with pytest.raises(KeyError) as caught:
        dm.setup()
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "sub3_bug.rec" in notes and "BuggyModule.load_windows, not a data problem" in notes


@pytest.mark.parametrize("workers", [0, 2])
def test_a_data_problem_still_skips_with_a_warning(tmp_path, workers):
    root = fake_root(tmp_path, ["sub1_0.rec", "sub2_0.rec", "sub3_bad.rec"])
    dm = BuggyModule(str(root), window_seconds=1.0, num_workers=workers, verbose=False, val_fraction=0,
                     test_fraction=0)
    with pytest.warns(RecordingSkippedWarning, match="sub3_bad.rec: unparsable labels"):
        dm.setup()
    assert dm.summary["recordings_loaded"] == 2


def test_notes_and_columns_survive_worker_processes(tmp_path):
    root = fake_root(tmp_path, ["sub1_0.rec", "sub2_0.rec", "sub3_0.rec"])
    serial = NotingModule(str(root), window_seconds=1.0, verbose=False, val_fraction=0, test_fraction=0)
    serial.setup()
    parallel = NotingModule(str(root), window_seconds=1.0, num_workers=2, verbose=False, val_fraction=0,
                            test_fraction=0)
    parallel.setup()
    assert parallel.summary["notes"] == serial.summary["notes"] == {
        "lengths": {"sub1_0.rec": 3, "sub2_0.rec": 3, "sub3_0.rec": 3}}
    assert parallel.window_table("train")["trial"].tolist() == [7, 8, 9] * 3


def test_the_loader_pickles_and_rebuilds_from_init_arguments(tmp_path):
    root = fake_root(tmp_path, ["sub1_0.rec"])
    dm = NotingModule(str(root), window_seconds=1.0, verbose=True, seed=3)
    loader = pickle.loads(pickle.dumps(dm.recording_loader(dm.make_pipeline())))
    assert isinstance(loader, RecordingLoader) and dict(loader.init_args)["seed"] == 3
    assert dict(loader.init_args)["verbose"] is False and "cache_dir" not in dict(loader.init_args)
    window_sets, scratch, reason = loader(dm.find_recordings()[0])
    assert reason is None and len(window_sets[0]) == 3 and scratch["notes"]["lengths"] == {"sub1_0.rec": 3}


def test_reader_errors_become_data_problems(tmp_path):
    from neurorvq.data.recording import read_raw_checked

    def reader(path, verbose=None):
        raise IndexError("index 0 is out of bounds")

    with pytest.raises(DataError, match=r"x\.gdf: unreadable GDF file \(IndexError: index 0 is out of bounds\)"):
        read_raw_checked(tmp_path / "x.gdf", reader)
