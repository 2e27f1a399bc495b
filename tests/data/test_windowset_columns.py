"""Per-window metadata columns of WindowSet and WindowDataset (issue 13: metadata travels with every window)."""

import numpy as np
import pytest

from neurorvq.data.preprocess import DataError
from neurorvq.data.windowset import WindowDataset, WindowSet


def _set(n, recording, subject, label=0, **columns):
    return WindowSet(np.zeros((n, 2, 8), np.float32), [0, 1], labels=np.full(n, label), subjects=np.full(n, subject),
                     recording=recording, starts=np.arange(n) * 8, columns=columns)


def test_columns_are_checked_cast_and_broadcast():
    ws = _set(3, "a.edf", 1, session="T", trial=[4, 5, 6], score=[0.5, 1, 2])
    assert ws.columns["session"].tolist() == ["T", "T", "T"]
    assert ws.columns["trial"].dtype == np.int64 and ws.columns["score"].dtype == np.float64
    with pytest.raises(DataError, match="column 'trial' has 2 entries for 3 windows"):
        _set(3, "a.edf", 1, trial=[1, 2])
    with pytest.raises(DataError, match="column name 'label' is not allowed"):
        WindowSet(np.zeros((1, 2, 8), np.float32), [0, 1], columns={"label": [1]})
    with pytest.raises(DataError, match="column name 'two words' is not allowed"):
        _set(1, "a.edf", 1, **{"two words": 1})
    with pytest.raises(DataError, match="holds object values"):
        _set(1, "a.edf", 1, thing=np.array([{}], dtype=object))


def test_dataset_table_has_builtin_and_metadata_columns_in_window_order():
    data = WindowDataset([_set(2, "a.edf", 1, label=0, session="T", trial=[1, 2]),
                          _set(3, "b.edf", 2, label=1, session="E", trial=[7, 8, 9])])
    assert data.column_names == ["subject", "recording", "start", "label", "session", "trial"]
    table = data.table()
    assert table["session"].tolist() == ["T", "T", "E", "E", "E"]
    assert table["trial"].tolist() == [1, 2, 7, 8, 9]
    assert table["subject"].tolist() == [1, 1, 2, 2, 2]
    assert table["recording"].tolist() == ["a.edf"] * 2 + ["b.edf"] * 3
    assert table["start"].tolist() == [0, 8, 0, 8, 16]


def test_subset_and_select_keep_columns_aligned():
    data = WindowDataset([_set(2, "a.edf", 1, trial=[1, 2]), _set(3, "b.edf", 2, trial=[7, 8, 9])])
    sub = data.subset([4, 1])
    assert sub.column("trial").tolist() == [2, 9]
    assert sub.column("start").tolist() == [8, 16]
    picked = data.sets[1].select(np.array([True, False, True]))
    assert picked.columns["trial"].tolist() == [7, 9] and picked.starts.tolist() == [0, 16]


def test_a_missing_column_lists_the_columns_and_suggests():
    data = WindowDataset([_set(2, "a.edf", 1, session="T"), _set(1, "b.edf", 2, session="E", run=3)])
    with pytest.raises(DataError, match=r"no column 'sesion' \(did you mean 'session'\?\); columns: subject, "
                                        r"recording, start, label, session; \['run'\] are set for some recordings"):
        data.column("sesion")


def test_columns_do_not_split_channel_set_buckets():
    data = WindowDataset([_set(2, "a.edf", 1, session="T"), _set(2, "b.edf", 1, session="E")])
    assert len(data.bucket_of_key) == 1
