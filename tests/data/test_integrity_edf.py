"""Samples a recording marks as invalid (issue 19): a copy of EEGMMIDB S001R03.edf with records 60-64 overwritten
by int16 values outside the header's digital range and a stretch held at the digital maximum. The windows touching
them are rejected by reason and counted in the summary (or kept with a warning on request), and the Clip limit
holds on the final windows, after resampling."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from neurorvq import get_modality
from neurorvq.data.channels import clean_channel_name
from neurorvq.data.preprocess import (FAULT_OUT_OF_RANGE, FAULT_SATURATED, Pipeline, PickChannels, RangeCheck,
                                      Resample, SignalFaultWarning, declared_range, find_faults, steps_from_config)
from neurorvq.datamodules.eegmmidb import EEGMMIDBDataModule
from neurorvq.errors import ConfigError

EEG = get_modality("eeg")
LIGHT_STEPS = [{"step": "PickChannels"}, {"step": "Resample"}]
BAD_RECORDS = range(60, 65)      # 1-s records: seconds 60-65
SATURATED = (5, 30, 80)          # channel 5, record 30 (30.0 s), first 80 samples (0.5 s at 160 Hz)


def _edf_layout(data: bytes) -> dict:
    """Header bytes, signal count, samples per record and digital range of each signal (EDF header fields)."""
    ns = int(data[252:256])
    base = 256

    def field(offset: int, width: int) -> list[str]:
        start = base + offset * ns
        return [data[start + i * width:start + (i + 1) * width].decode().strip() for i in range(ns)]

    return {"header_bytes": int(data[184:192]), "ns": ns, "n_samps": [int(x) for x in field(216, 8)],
            "digital_min": [int(x) for x in field(120, 8)], "digital_max": [int(x) for x in field(128, 8)],
            "labels": field(0, 16)}


@pytest.fixture(scope="module")
def damaged(data_dir, tmp_path_factory):
    """``(root, path, layout)`` of the damaged copy under an EEGMMIDB-shaped root."""
    src = data_dir / "eegmmidb" / "S001" / "S001R03.edf"
    if not src.exists():
        pytest.skip(f"EEGMMIDB sample not found at {src}")
    data = bytearray(src.read_bytes())
    layout = _edf_layout(bytes(data))
    record = sum(layout["n_samps"]) * 2
    signal_at = np.concatenate([[0], np.cumsum(layout["n_samps"])]) * 2
    rng = np.random.default_rng(0)
    for r in BAD_RECORDS:
        for c in range(64):  # the EEG signals (signal 64 is the EDF+ annotation channel)
            n, top = layout["n_samps"][c], layout["digital_max"][c]
            values = rng.integers(top + 1, 32768, n) * rng.choice([-1, 1], n)
            start = layout["header_bytes"] + r * record + signal_at[c]
            data[start:start + 2 * n] = values.astype("<i2").tobytes()
    c, r, n = SATURATED
    start = layout["header_bytes"] + r * record + signal_at[c]
    data[start:start + 2 * n] = np.full(n, layout["digital_max"][c], "<i2").tobytes()
    root = tmp_path_factory.mktemp("eegmmidb")
    (root / "S001").mkdir()
    path = root / "S001" / "S001R03.edf"
    path.write_bytes(bytes(data))
    assert path.stat().st_size == src.stat().st_size
    return root, path, layout


def _module(root, steps, **kwargs) -> EEGMMIDBDataModule:
    dm = EEGMMIDBDataModule(str(root), task="pretrain", subjects=[1], runs=[3], steps=steps, verbose=False, **kwargs)
    dm.setup("fit")
    return dm


# ------------------------------------------------------------------------------------------------ detection
def test_faults_are_found_on_the_data_as_read(damaged, data_dir):
    _, path, layout = damaged
    raw = mne.io.read_raw_edf(path, verbose="error")
    low, high, step = declared_range(raw)
    assert np.allclose(low, -8092e-6) and np.allclose(high, 8092e-6) and np.allclose(step, 1e-6)
    recording = Pipeline(EEG, [PickChannels(), Resample()]).run(raw, path.name)
    n_out = sum(layout["n_samps"][c] for c in range(64)) * len(BAD_RECORDS)
    assert recording.fault_counts() == {"samples outside declared range": n_out, "saturated stretches": 1}
    saturated = [f for f in recording.faults if f.reason == FAULT_SATURATED]
    assert len(saturated) == 1
    f = saturated[0]
    assert f.channel == clean_channel_name(layout["labels"][SATURATED[0]]) and f.samples == SATURATED[2]
    assert (f.onset, f.duration) == pytest.approx((30.0, 0.5))
    out = [f for f in recording.faults if f.reason == FAULT_OUT_OF_RANGE]
    assert len({f.channel for f in out}) == 64 and min(f.onset for f in out) == pytest.approx(60.0)
    assert max(f.onset + f.duration for f in out) == pytest.approx(65.0)
    # the undamaged original has none; a reader that declares no range (RawArray) is not checked
    original = mne.io.read_raw_edf(data_dir / "eegmmidb" / "S001" / "S001R03.edf", verbose="error")
    assert Pipeline(EEG, [PickChannels(), Resample()]).run(original, "original").faults == []
    assert declared_range(mne.io.RawArray(np.zeros((1, 10)), mne.create_info(1, 100.0), verbose="error")) is None


def test_the_saturation_rule():
    sfreq, channels = 160.0, ["a", "b", "c"]
    data = np.zeros((3, 1600))
    data[0, 100:104] = 1.0     # 4 samples at the maximum: 25 ms at 160 Hz, saturated
    data[1, 100:103] = -1.0    # 3 samples at the minimum: too short
    data[1, 500] = 1.5         # one sample past the range
    data[2, :] = 5.0           # a channel without a declared range is not checked
    low, high, step = np.array([-1.0, -1.0, np.nan]), np.array([1.0, 1.0, np.nan]), np.array([0.01, 0.01, np.nan])
    faults = find_faults(data, sfreq, channels, low, high, step)
    assert [(f.channel, f.reason, f.samples) for f in faults] == [("a", FAULT_SATURATED, 4),
                                                                  ("b", FAULT_OUT_OF_RANGE, 1)]
    assert faults[0].onset == pytest.approx(100 / sfreq) and faults[0].duration == pytest.approx(4 / sfreq)
    assert find_faults(data, sfreq, channels, low, high, step, saturation_seconds=0.05) == faults[1:]
    wide = find_faults(data, sfreq, channels, low, high, step, margin_seconds=1.0)
    assert wide[0].onset == 0.0 and wide[0].duration == pytest.approx(104 / sfreq + 1.0)
    with pytest.raises(ConfigError, match="on_fault"):
        RangeCheck(on_fault="warn")
    assert steps_from_config([{"step": "RangeCheck", "on_fault": "keep"}]) == [RangeCheck(on_fault="keep")]


# ------------------------------------------------------------------------------------------------ DataModule
def test_windows_touching_faults_are_rejected_by_reason(damaged):
    root, _, _ = damaged
    dm = _module(root, LIGHT_STEPS)
    # 31 windows of 4 s: [60, 64) and [64, 68) touch the bad records, [28, 32) the saturated stretch
    assert dm.summary["rejected"] == {FAULT_OUT_OF_RANGE: 2, FAULT_SATURATED: 1}
    assert dm.summary["windows_kept"] == 28 and dm.summary["recordings_loaded"] == 1
    starts = dm.datasets["train"].sets[0].starts.tolist()
    assert not {60 * 200, 64 * 200, 28 * 200} & set(starts) and len(starts) == 28


def test_kept_with_a_warning_when_asked(damaged):
    root, path, _ = damaged
    with pytest.warns(SignalFaultWarning, match=rf"{path}: kept 3 windows .*{FAULT_OUT_OF_RANGE}: 2.*"
                                                 rf"{FAULT_SATURATED}: 1.*on_fault='keep'"):
        dm = _module(root, LIGHT_STEPS + [{"step": "RangeCheck", "on_fault": "keep"}])
    assert dm.summary["rejected"] == {} and dm.summary["windows_kept"] == 31


def test_the_clip_limit_holds_on_the_final_windows(damaged):
    root, _, _ = damaged
    with pytest.warns(SignalFaultWarning):  # kept on purpose, to look at what the steps make of the bursts
        dm = _module(root, Pipeline.default(EEG).config()["steps"] + [{"step": "RangeCheck", "on_fault": "keep"}])
    signals = dm.datasets["train"].sets[0].signals
    assert len(signals) == 31
    # the default steps clip at ±500 uV before resampling; resampling the clipped 30 mV bursts rang to ~1000 uV
    assert np.abs(signals).max() <= 500.0
    assert (np.abs(signals).max(axis=(1, 2)) == 500.0).sum() >= 2  # the bad records' windows sit at the limit
