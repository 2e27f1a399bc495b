"""The preprocessing pipeline on real EEGMMIDB files and on damaged or unusual input."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from neurorvq import get_modality
from neurorvq.data.preprocess import (
    BandPass,
    Clip,
    CommonAverageReference,
    DataError,
    Pipeline,
    PickChannels,
    Resample,
    cut_windows,
    steps_from_config,
)
from neurorvq.errors import ConfigError

EEG = get_modality("eeg")


@pytest.fixture(scope="module")
def recording(data_dir):
    raw = mne.io.read_raw_edf(data_dir / "eegmmidb" / "S001" / "S001R01.edf", verbose="error")
    return Pipeline.default(EEG).run(raw, "S001R01.edf")


def test_real_file_to_spec_rate_and_unit(recording):
    assert recording.sfreq == 200.0 and recording.unit == "uV"
    assert recording.data.shape == (64, 60 * 200) and recording.data.dtype == np.float32
    assert 5 < float(recording.data.std()) < 200  # microvolts, not volts
    # clipped at ±500 µV before resampling (the official order) and again after it, whose ringing overshoots
    assert np.abs(recording.data).max() <= 500.0
    assert recording.channels[0] == "fc5"
    assert recording.annotations[0][2] == "T0"


def test_windows_and_rejection_counts(recording):
    windows, starts, report = cut_windows(recording, 4.0, stride_seconds=2.0)
    assert windows.shape == (29, 64, 800) and starts[1] == 400 and report.kept == 29
    bad = recording.data.copy()
    bad[3, 100:300] = np.nan      # window 0 (NaN)
    bad[:, 800:1600] = 0.0        # window 1 flat
    damaged = type(recording)(bad, recording.channels, recording.sfreq, recording.unit, "x")
    kept, _, report = cut_windows(damaged, 4.0, max_amplitude=400.0)
    assert report.rejected["nan"] == 1 and report.rejected["flat"] >= 1
    assert report.kept + sum(report.rejected.values()) == 15
    assert "rejected" in report.summary()


def test_config_is_recorded_and_rebuilt():
    pipeline = Pipeline.default(EEG)
    config = pipeline.config()
    assert [s["step"] for s in config["steps"]] == ["PickChannels", "Notch", "BandPass", "Clip", "Resample"]
    assert config["steps"][2]["high"] == 44.5  # official quirk Q18
    rebuilt = steps_from_config(config["steps"])
    assert [s.config() for s in rebuilt] == config["steps"]
    with pytest.raises(ConfigError, match="unknown preprocessing step 'Bandpass'.*BandPass"):
        steps_from_config([{"step": "Bandpass"}])


def _raw(sfreq: float, names=("Cz", "C3", "C4"), seconds=10.0, scale=20e-6):
    rng = np.random.default_rng(0)
    info = mne.create_info(list(names), sfreq, "eeg")
    return mne.io.RawArray(rng.standard_normal((len(names), int(seconds * sfreq))) * scale, info, verbose="error")


def test_far_below_rate_is_an_error_unless_opted_in():
    with pytest.raises(DataError, match=r"low.edf: recorded at 100 Hz, far below the 'eeg' rate of 200 Hz"):
        Pipeline(EEG, [PickChannels(), Resample()]).run(_raw(100.0), "low.edf")
    rec = Pipeline(EEG, [PickChannels(), Resample(allow_upsample=True)]).run(_raw(100.0), "low.edf")
    assert rec.sfreq == 200.0


def test_no_vocabulary_channel_is_an_error():
    with pytest.raises(DataError, match="odd.edf: no channel maps"):
        Pipeline(EEG, [PickChannels(), Resample()]).run(_raw(200.0, names=("X1", "X2")), "odd.edf")


def test_car_and_clip():
    rec = Pipeline(EEG, [PickChannels(), CommonAverageReference(), Clip(10.0), Resample()]).run(_raw(200.0), "r")
    assert np.abs(rec.data).max() <= 10.0 + 1e-4
    rec = Pipeline(EEG, [PickChannels(), CommonAverageReference(), Resample()]).run(_raw(200.0), "r")
    assert np.allclose(rec.data.mean(axis=0), 0.0, atol=1e-3)


def test_bandpass_removes_out_of_band_power():
    t = np.arange(2000) / 200.0
    data = np.stack([np.sin(2 * np.pi * 10 * t) + np.sin(2 * np.pi * 70 * t)]) * 1e-5
    raw = mne.io.RawArray(data, mne.create_info(["Cz"], 200.0, "eeg"), verbose="error")
    rec = Pipeline(EEG, [PickChannels(), BandPass(0.5, 44.5), Resample()]).run(raw, "r")
    spectrum = np.abs(np.fft.rfft(rec.data[0, 200:-200]))
    freqs = np.fft.rfftfreq(rec.data.shape[1] - 400, 1 / 200)
    assert spectrum[np.argmin(np.abs(freqs - 70))] < 0.01 * spectrum[np.argmin(np.abs(freqs - 10))]


def _named_raw(names: list[str], sfreq: float = 200.0, seconds: float = 2.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, 20e-6, (len(names), int(sfreq * seconds)))
    return mne.io.RawArray(data, mne.create_info(names, sfreq, "eeg"), verbose="error")


def test_drop_channels_then_reference_averages_over_the_kept_channels():
    """The EEG benchmark's order (benchmarks.md §2.1): drop named channels, CAR over what is left (including a
    channel outside the vocabulary), then map onto the vocabulary."""
    names = ["Cz", "C3", "C4", "FFC5h", "TPP9h"]  # FFC5h dropped by name; TPP9h kept for the CAR, not in the vocabulary
    raw = _named_raw(names)
    steps = steps_from_config([{"step": "DropChannels", "names": ["ffc5h"]}, {"step": "CommonAverageReference"},
                               {"step": "PickChannels"}])
    rec = Pipeline(EEG, steps).run(raw, "r")
    assert rec.channels == ["cz", "c3", "c4"]
    kept = raw.get_data()[[0, 1, 2, 4]] * 1e6
    expected = (kept - kept.mean(axis=0, keepdims=True))[:3]
    np.testing.assert_allclose(rec.data, expected, rtol=1e-5, atol=1e-3)
    assert rec.dropped_channels["FFC5h"] == "dropped by the DropChannels step"
    assert "TPP9h" in rec.dropped_channels


def test_drop_channels_refuses_to_drop_everything():
    with pytest.raises(DataError, match="drops every channel"):
        Pipeline(EEG, steps_from_config([{"step": "DropChannels", "names": ["Cz", "C3"]}])).run(
            _named_raw(["Cz", "C3"]), "r")


def test_datamodules_pre_pick_the_vocabulary_only_when_no_reference_comes_first():
    from neurorvq.data.datamodule import references_before_pick

    car_first = Pipeline(EEG, steps_from_config([{"step": "CommonAverageReference"}, {"step": "PickChannels"}]))
    pick_first = Pipeline(EEG, steps_from_config([{"step": "PickChannels"}, {"step": "CommonAverageReference"}]))
    assert references_before_pick(car_first) and not references_before_pick(pick_first)


def test_drops_before_the_reference_happen_before_loading_with_the_same_result():
    """DropChannels before the CAR is applied before the samples are loaded (never filtered); the output equals
    filtering every channel, then dropping, then referencing."""
    from neurorvq.data.preprocess import early_drops

    names = ["Cz", "C3", "C4", "EOGh", "TPP9h"]
    raw = _named_raw(names, seconds=4.0)
    config = [{"step": "BandPass", "low": 1.0, "high": 40.0}, {"step": "DropChannels", "names": ["EOGh"]},
              {"step": "CommonAverageReference"}, {"step": "DropChannels", "names": ["TPP9h"]}, {"step": "PickChannels"}]
    steps = steps_from_config(config)
    assert early_drops(steps) == [steps[1]]
    rec = Pipeline(EEG, steps).run(raw, "r")
    filtered = raw.copy().load_data().filter(1.0, 40.0, picks="all", verbose="error").get_data() * 1e6
    kept = filtered[[0, 1, 2, 4]]
    expected = (kept - kept.mean(axis=0, keepdims=True))[:3]
    assert rec.channels == ["cz", "c3", "c4"]
    np.testing.assert_allclose(rec.data, expected, rtol=1e-4, atol=1e-3)
