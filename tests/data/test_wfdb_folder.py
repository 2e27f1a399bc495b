"""A folder of WFDB records: the real PTB Diagnostic record (../shared/data/ptbdb) and the challenge-2015 records
(a .mat signal file, non-ECG channels, missing samples), and bad records (truncated .dat, flat lead, a lead in a
non-voltage unit, missing root)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from neurorvq.data.channels import clean_channel_name
from neurorvq.data.preprocess import DataError
from neurorvq.data.windows import RecordingSkippedWarning
from neurorvq.datamodules.wfdb_folder import (WFDBFolderDataModule, header_record_line, read_wfdb, segment_names,
                                              volt_factor)
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality

LIGHT_STEPS = [{"step": "PickChannels"}, {"step": "Resample"}]


def pqrst(seconds: float, fs: float, bpm: float = 75.0, r_mv: float = 1.2) -> np.ndarray:
    """A synthetic ECG lead [mV], ``float64 [seconds x fs]``: Gaussian P, Q, R, S, T waves every beat."""
    t = np.arange(int(round(seconds * fs))) / fs
    x = np.zeros_like(t)
    for beat in np.arange(0.3, seconds, 60.0 / bpm):
        for amp, at, width in ((0.15, -0.2, 0.025), (-0.1, -0.03, 0.01), (r_mv, 0.0, 0.012), (-0.25, 0.03, 0.01),
                               (0.3, 0.25, 0.04)):
            x += amp * np.exp(-0.5 * ((t - beat - at) / width) ** 2)
    return x


def write_record(folder: Path, name: str, signals: np.ndarray, names: list[str], units: list[str],
                 fs: float) -> Path:
    """Write ``signals`` ``[N, C]`` (in ``units``) as WFDB format 16 with gain 1000/unit; returns the .hea path."""
    folder.mkdir(parents=True, exist_ok=True)
    c = signals.shape[1]
    wfdb.wrsamp(name, fs=fs, units=units, sig_name=names, p_signal=signals, fmt=["16"] * c, adc_gain=[1000.0] * c,
                baseline=[0] * c, write_dir=str(folder))
    return folder / f"{name}.hea"


@pytest.fixture(scope="module")
def ptbdb(data_dir) -> Path:
    path = data_dir / "ptbdb"
    if not (path / "patient001" / "s0010_re.hea").exists():
        pytest.skip(f"PTB Diagnostic sample not found under {path}")
    return path


@pytest.fixture(scope="module")
def challenge(data_dir) -> Path:
    path = data_dir / "challenge-2015"
    if not (path / "training" / "a103l.mat").exists():
        pytest.skip(f"challenge-2015 sample not found under {path}")
    return path


def test_ptbdb_record_channels_rate_unit_and_batches(ptbdb):
    dm = WFDBFolderDataModule(str(ptbdb), batch_size=2, val_fraction=0, test_fraction=0, verbose=False)
    dm.setup()
    assert dm.subject_names == ["patient001"] and dm.splits["train"] == ["patient001"]  # subject = parent folder
    ws = dm.datasets["train"].sets[0]
    record = ptbdb / "patient001" / "s0010_re"
    header = wfdb.rdheader(str(record))
    assert Path(ws.recording) == record.with_suffix(".hea")
    # 38.4 s at 1000 Hz -> 200 Hz; 10-s windows = 2000 samples = 50 patches of 40; all 15 leads (.dat + .xyz)
    assert ws.signals.shape == (3, 15, 2000) and ws.labels is None and ws.starts.tolist() == [0, 2000, 4000]
    assert ws.channels == [clean_channel_name(n) for n in header.sig_name]
    spec = get_modality("ecg")
    assert ws.channel_ids.tolist() == [spec.channel_index(n) for n in ws.channels]
    assert dm.spec.sampling_rate == 200 and dm.spec.unit == "mV" and dm.num_samples == 2000
    assert dm.summary["dropped_channels"] == {} and dm.summary["rejected"] == {}
    peak = np.abs(ws.signals).max(axis=2).max(axis=1)  # largest lead per window [mV]
    assert ((0.5 < peak) & (peak < 3.0)).all(), peak
    # same signal as wfdb reads it (mV), after band-pass and resampling: lead v3 correlates with the source
    source = wfdb.rdrecord(str(record), channel_names=["v3"]).p_signal[:10000, 0]
    from scipy.signal import resample_poly
    source = resample_poly(source - source.mean(), 1, 5)
    r = np.corrcoef(source[200:1800], ws.signals[0, ws.channels.index("v3"), 200:1800])[0, 1]
    assert r > 0.95, r
    batches = list(dm.train_dataloader())
    assert sorted(tuple(b["signal"].shape) for b in batches) == [(1, 15, 2000), (2, 15, 2000)]  # shuffled
    assert set(batches[0]) == {"signal", "channel_ids", "subject"} and batches[0]["channel_ids"].shape[1] == 15


def test_challenge_mat_record_non_ecg_channels_and_missing_samples(challenge):
    dm = WFDBFolderDataModule(str(challenge), subject_from="stem", val_fraction=0, test_fraction=0, verbose=False)
    dm.setup()
    sets = {Path(s.recording).name: s for s in dm.datasets["train"].sets}
    assert sorted(sets) == ["a103l.hea", "v102s.hea"] and dm.subject_names == ["a103l", "v102s"]
    assert wfdb.rdrecord(str(challenge / "training" / "a103l")).file_name[0] == "a103l.mat"
    assert sets["a103l.hea"].signals.shape == (33, 1, 2000)  # 330 s; the .mat record read via wfdb.rdrecord
    for ws in sets.values():
        assert ws.channels == ["ii"]
        assert 0.3 < float(np.median(np.abs(ws.signals).max(axis=2))) < 3.0  # R peaks in mV
    dropped = dm.summary["dropped_channels"]  # PLETH, RESP (and the unspecified precordial 'V') by the mapping
    assert set(dropped) == {"V", "PLETH", "RESP"}
    assert all("not in the 'ecg' vocabulary" in why for why in dropped.values())
    # v102s: lead II has a few missing samples; only the windows holding them are rejected (not the whole lead)
    ii = wfdb.rdrecord(str(challenge / "training" / "v102s"), channel_names=["II"]).p_signal[:, 0]
    holed = {int(i) // 2500 for i in np.flatnonzero(np.isnan(ii))}  # 10-s windows at 250 Hz holding a gap
    assert holed and dm.summary["rejected"]["nan"] >= len(holed)
    assert len(sets["v102s.hea"]) + dm.summary["rejected"]["nan"] == 30
    assert not set((sets["v102s.hea"].starts // 2000).tolist()) & holed
    assert all(np.isfinite(ws.signals).all() for ws in sets.values())


def test_volt_factors():
    assert volt_factor("mV") == 1e-3 and volt_factor("uV") == 1e-6 and volt_factor("") == 1e-3
    assert volt_factor("NU") is None and volt_factor("mmHg") is None


def test_header_comment_line_before_the_record_line(data_dir):
    header = data_dir / "mitdb" / "100.hea"
    if not header.exists():
        pytest.skip(f"MIT-BIH sample not found at {header}")
    assert header.read_text().startswith("# unnecessary comment")
    assert header_record_line(header) == ["100", "2", "360", "650000"]
    signals = read_wfdb(header)
    assert signals.names == ["MLII", "V5"] and signals.fs == 360 and signals.data.shape == (2, 650000)
    assert signals.units == ["mV", "mV"] and abs(signals.data).max() < 0.01  # volts for MNE


def test_truncated_dat_is_skipped_or_raises_in_strict_mode(ptbdb, tmp_path):
    source = ptbdb / "patient001"
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    for ext in (".hea", ".dat", ".xyz"):
        shutil.copy(source / f"s0010_re{ext}", good / f"s0010_re{ext}")
        shutil.copy(source / f"s0010_re{ext}", bad / f"s0010_re{ext}")
    data = (source / "s0010_re.dat").read_bytes()
    (bad / "s0010_re.dat").chmod(0o644)
    (bad / "s0010_re.dat").write_bytes(data[: len(data) // 3])  # cut mid-record
    dm = WFDBFolderDataModule(str(tmp_path), steps=LIGHT_STEPS, val_fraction=0, test_fraction=0, verbose=False)
    with pytest.warns(RecordingSkippedWarning, match=r"bad/s0010_re\.hea: truncated signal file s0010_re\.dat"):
        dm.setup()
    assert dm.summary["recordings_loaded"] == 1 and dm.summary["recordings_skipped"] == 1
    assert [Path(s.recording).parent.name for s in dm.datasets["train"].sets] == ["good"]
    with pytest.raises(DataError, match=r"s0010_re\.dat: 307200 bytes, but the header's 38400 samples x 12 signal"):
        WFDBFolderDataModule(str(bad), strict=True, steps=LIGHT_STEPS, verbose=False).setup()


def test_flat_lead_and_non_voltage_lead_are_reported(tmp_path):
    fs, seconds = 250.0, 20.0
    lead = pqrst(seconds, fs)
    signals = np.stack([lead, 1.3 * lead, np.zeros_like(lead), 0.5 * lead + 2.0], axis=1)
    write_record(tmp_path / "subj", "rec1", signals, ["I", "II", "V1", "III"], ["mV", "mV", "mV", "NU"], fs)
    dm = WFDBFolderDataModule(str(tmp_path), steps=LIGHT_STEPS, verbose=False)
    with pytest.warns(RecordingSkippedWarning, match=r"rec1\.hea: dead channel\(s\) over the whole recording "
                                                     r"\(v1: flat"):
        with pytest.raises(DataError, match="none of the 1 WFDB folder recordings"):
            dm.setup()
    dm = WFDBFolderDataModule(str(tmp_path), steps=LIGHT_STEPS, dead_channels="drop", verbose=False)
    dm.setup()
    ws = dm.datasets["train"].sets[0]
    assert ws.channels == ["i", "ii"] and ws.signals.shape == (2, 2, 2000)
    dropped = dm.summary["dropped_channels"]
    assert dropped["v1"].startswith("flat") and "unit 'NU' is not a voltage" in dropped["III"]
    r_peak = float(np.abs(ws.signals[:, 1]).max())
    assert 1.3 < r_peak < 1.8, r_peak  # 1.3 x 1.2 mV R wave, in mV after the round trip through volts


def test_missing_or_empty_root_and_multi_segment_headers(tmp_path):
    with pytest.raises(DataError, match=rf"'{tmp_path / 'nowhere'}' does not exist: set data\.init_args\.root .*"
                                        r"WFDBFolderDataModule\) to the folder holding WFDB records"):
        WFDBFolderDataModule(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"no WFDB folder recordings found under"):
        WFDBFolderDataModule(str(tmp_path), verbose=False).setup()
    (tmp_path / "multi.hea").write_text("# a multi-segment record\nmulti/2 1 125 2000\nmulti_1 1000\nmulti_2 1000\n")
    (tmp_path / "multi_1.hea").write_text("multi_1 1 125 1000\nmulti_1.dat 16 200 16 0 0 0 0 II\n")
    (tmp_path / "multi_2.hea").write_text("multi_2 1 125 1000\nmulti_2.dat 16 200 16 0 0 0 0 II\n")
    assert segment_names(tmp_path / "multi.hea") == ["multi_1", "multi_2"]
    infos = WFDBFolderDataModule(str(tmp_path), verbose=False).find_recordings()
    assert [i.path.name for i in infos] == ["multi.hea"]  # segments are read through their master header


def test_own_lead_names_through_a_channel_map(tmp_path):
    fs, seconds = 250.0, 20.0
    lead = pqrst(seconds, fs)
    write_record(tmp_path / "data" / "subj", "rec1", np.stack([lead, 1.5 * lead, 0.2 * lead + 1.0], axis=1),
                 ["ECG 000", "ECG 001", "PLETH"], ["mV", "mV", "NU"], fs)
    root = str(tmp_path / "data")
    with pytest.raises(DataError, match=r"rec1\.hea: no channel maps onto the 'ecg' vocabulary: 3 channels dropped, "
                                        r"e\.g\. 'ECG 000' \('000' is not in the 'ecg' vocabulary\).* set channel_map"):
        WFDBFolderDataModule(root, steps=LIGHT_STEPS, strict=True, verbose=False).setup()
    (tmp_path / "leads.tsv").write_text("old\tnew\nECG 000\tI\nECG 001\tII\n")
    dm = WFDBFolderDataModule(root, channel_map=str(tmp_path / "leads.tsv"), steps=LIGHT_STEPS, verbose=False)
    dm.setup()
    (ws,) = dm.datasets["train"].sets
    spec = get_modality("ecg")
    assert ws.channels == ["i", "ii"] and ws.channel_ids.tolist() == [spec.channel_index("i"), spec.channel_index("ii")]
    r_peaks = np.abs(ws.signals).max(axis=(0, 2))
    assert 1.3 < r_peaks[1] / r_peaks[0] < 1.7, r_peaks  # 'ECG 001' (1.5 x) is lead ii
    assert set(dm.summary["dropped_channels"]) == {"PLETH"}
    with pytest.raises(ConfigError, match=r"rec1\.hea lacks 1 channel\(s\) named in channel_map: 'ECG 002'"):
        WFDBFolderDataModule(root, channel_map={"ECG 000": "i", "ECG 002": "iii"}, steps=LIGHT_STEPS,
                             verbose=False).setup()
    with pytest.raises(ConfigError, match=r"'ECG 000' -> 'lead1'"):
        WFDBFolderDataModule(root, channel_map={"ECG 000": "lead1"})
