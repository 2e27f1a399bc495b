"""MIT-BIH Arrhythmia on the real record 100 of ../shared/data/mitdb (with its header comment line): beat windows,
AAMI labels, channels, rate, unit, the inter-patient split, and bad records (missing .atr, truncated .dat)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import wfdb

from neurorvq.data.preprocess import DataError
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.mitbih import (AAMI_CLASSES, BEAT_CLASSES, DS1, DS2, PACED, RECORDS, MITBIHDataModule,
                                         beat_labels)
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality

LIGHT_STEPS = [{"step": "PickChannels"}, {"step": "Resample"}]


@pytest.fixture(scope="module")
def root(data_dir) -> Path:
    path = data_dir / "mitdb"
    if not (path / "100.atr").exists():
        pytest.skip(f"MIT-BIH record 100 not found under {path}")
    return path


@pytest.fixture(scope="module")
def record100(root) -> MITBIHDataModule:
    dm = MITBIHDataModule(str(root), batch_size=512, verbose=False)
    dm.setup()
    return dm


def test_record_100_beats_labels_and_centring(record100, root):
    dm = record100
    assert dm.splits == {"train": [], "val": [], "test": ["100"]}  # 100 is a DS2 record
    ws = dm.datasets["test"].sets[0]
    assert Path(ws.recording) == root / "100.hea" and ws.subjects.tolist() == [100] * len(ws)
    ann = wfdb.rdann(str(root / "100"), "atr")
    assert len(ann.symbol) == 2274 and Counter(ann.symbol) == {"N": 2239, "A": 33, "V": 1, "+": 1}
    # 650000 samples at 360 Hz -> 361111 at 200 Hz; 1.2-s windows = 240 samples = 6 patches, centred on R
    n = round(650000 * 200 / 360)
    beats = [(s, BEAT_CLASSES[sym]) for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_CLASSES]
    starts = [round(s * 200 / 360) - 120 for s, _ in beats]
    inside = [(st, cls) for st, (_, cls) in zip(starts, beats) if 0 <= st and st + 240 <= n]
    expected = Counter(cls for _, cls in inside)
    assert expected["N"] == 2239 - 2 and expected["S"] == 33 and expected["V"] == 1  # first and last N cut off
    assert ws.signals.shape == (len(inside), 2, 240) and ws.signals.dtype == np.float32
    assert ws.starts.tolist() == [st for st, _ in inside]
    assert Counter(AAMI_CLASSES[k] for k in ws.labels.tolist()) == expected
    assert dm.summary["rejected"] == {"outside recording": 2}
    assert dm.annotation_counts["100"] == Counter({"N": 2239, "S": 33, "V": 1, "skipped '+'": 1})
    # channels: MLII -> ii, V5 -> v5 (file order); 200 Hz, mV
    assert wfdb.rdheader(str(root / "100")).sig_name == ["MLII", "V5"]
    assert ws.channels == ["ii", "v5"]
    spec = get_modality("ecg")
    assert ws.channel_ids.tolist() == [spec.channel_index("ii"), spec.channel_index("v5")]
    assert dm.spec.sampling_rate == 200 and dm.spec.unit == "mV" and dm.num_samples == 240
    centre = ws.signals[:, 0, 120]  # lead ii at the annotated R peak
    assert 0.5 < float(np.median(centre)) < 3.0, np.median(centre)
    offset = np.abs(np.argmax(ws.signals[:, 0, 100:140], axis=1) - 20)  # R maximum within +-20 samples of centre
    assert np.median(offset) <= 3
    assert dm.label_names == ("N", "S", "V", "F", "Q") and dm.num_classes == 5


def test_batches(record100):
    loader = record100.test_dataloader()
    batch = next(iter(loader))
    assert batch["signal"].shape == (512, 2, 240) and batch["channel_ids"].shape == (512, 2)
    assert set(batch) == {"signal", "channel_ids", "label", "subject"}
    assert sum(b["signal"].shape[0] for b in loader) == len(record100.datasets["test"])
    with pytest.raises(DataError, match="train split of MIT-BIH Arrhythmia .* has no windows"):
        record100.train_dataloader()  # only a DS2 record here


def test_inter_patient_records_and_paced_exclusion(tmp_path):
    assert len(DS1) == len(DS2) == 22 and len(RECORDS) == 48 and not set(DS1) & set(DS2)
    assert set(PACED) == {102, 104, 107, 217} and not set(PACED) & (set(DS1) | set(DS2))
    for r in (100, 101, 102, 118):
        (tmp_path / f"{r}.hea").write_text(f"{r} 2 360 650000\n")  # headers only: find_recordings reads none
    dm = MITBIHDataModule(str(tmp_path), verbose=False)
    assert [i.subject for i in dm.find_recordings()] == ["100", "101", "118"]  # paced 102 left out
    assert dm.resolve_plan().values["test"] == ["100"]  # DS2 records found
    dm = MITBIHDataModule(str(tmp_path), include_paced=True, verbose=False)
    assert [i.subject_id for i in dm.find_recordings()] == [100, 101, 102, 118]
    with pytest.raises(ConfigError, match="split='inter_patient', whose test records are DS2"):
        MITBIHDataModule(str(tmp_path), test_subjects=[100])
    with pytest.raises(ConfigError, match="split is 'random'"):
        MITBIHDataModule(str(tmp_path), split="random")
    with pytest.raises(ConfigError, match=r"leads \['mlii'\] are not ECG vocabulary names"):
        MITBIHDataModule(str(tmp_path), leads=["MLII"])
    peaks, labels, skipped = beat_labels(["N", "+", "A", "~", "V", "F", "/", "|", "j"], range(9))
    assert peaks.tolist() == [0, 2, 4, 5, 6, 8] and labels.tolist() == [0, 1, 2, 3, 4, 0]
    assert skipped == {"+": 1, "~": 1, "|": 1}


def test_one_lead_subject_split_and_missing_root(root, tmp_path):
    dm = MITBIHDataModule(str(root), leads=["ii"], split="subjects", steps=LIGHT_STEPS, verbose=False)
    dm.setup()
    assert dm.splits["train"] == ["100"]  # one record: all of it in train
    ws = dm.datasets["train"].sets[0]
    assert ws.channels == ["ii"] and ws.signals.shape[1:] == (1, 240)
    assert "not among the selected leads" in dm.summary["dropped_channels"]["V5"]
    with pytest.raises(DataError, match=rf"'{tmp_path / 'mitdb'}' does not exist: set data\.init_args\.root .*"
                                        r"MITBIHDataModule\) to the folder holding the MIT-BIH records"):
        MITBIHDataModule(str(tmp_path / "mitdb"))


def _copy_record(root: Path, folder: Path, number: int, annotations: bool = True) -> None:
    """Record 100 renamed to ``number`` (header record and file names rewritten)."""
    folder.mkdir(parents=True, exist_ok=True)
    header = (root / "100.hea").read_text().replace("100 2 360", f"{number} 2 360").replace("100.dat", f"{number}.dat")
    (folder / f"{number}.hea").write_text(header)
    shutil.copy(root / "100.dat", folder / f"{number}.dat")
    (folder / f"{number}.dat").chmod(0o644)
    if annotations:
        shutil.copy(root / "100.atr", folder / f"{number}.atr")


def test_missing_atr_truncated_dat_and_missing_record(root, tmp_path):
    _copy_record(root, tmp_path, 101)  # a good DS1 record
    _copy_record(root, tmp_path, 103, annotations=False)  # no .atr
    _copy_record(root, tmp_path, 105)
    data = (tmp_path / "105.dat").read_bytes()
    (tmp_path / "105.dat").write_bytes(data[: len(data) // 2])  # truncated
    dm = MITBIHDataModule(str(tmp_path), records=[101, 103, 105, 106], steps=LIGHT_STEPS, verbose=False)
    with pytest.warns(RecordingSkippedWarning) as caught:
        dm.setup()
    messages = [str(w.message) for w in caught if issubclass(w.category, RecordingSkippedWarning)]
    assert any("103.hea: missing beat annotations" in m and "103.atr not found" in m for m in messages), messages
    assert any("105.hea: truncated signal file 105.dat: 975000 bytes" in m for m in messages), messages
    assert any("106.hea: file not found" in m for m in messages), messages
    assert dm.summary["recordings_loaded"] == 1 and dm.summary["recordings_skipped"] == 3
    assert [Path(s.recording).name for s in dm.datasets["train"].sets] == ["101.hea"]
    assert dm.datasets["train"].subjects[0] == 101 and dm.splits["test"] == ["103", "105"]
    with pytest.raises(DataError, match=r"103\.hea: missing beat annotations.*strict=True"):
        MITBIHDataModule(str(tmp_path), records=[103], strict=True, steps=LIGHT_STEPS, verbose=False).setup()
    with pytest.raises(DataError, match=r"105\.hea: truncated signal file 105\.dat"):
        MITBIHDataModule(str(tmp_path), records=[105], strict=True, steps=LIGHT_STEPS, verbose=False).setup()
