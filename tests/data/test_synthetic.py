"""Synthetic default data: determinism, shapes, units, spectral and physiological signatures, the DataModule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import find_peaks, welch

from neurorvq.data.synthetic import ECG_LEADS, GENERATORS, eeg_positions, generate, synth_ecg, synth_eeg, synth_emg
from neurorvq.datamodules.synthetic import (DEFAULT_CHANNELS, EEG_1020_MONTAGE, SyntheticDataModule,
                                            SyntheticDataset, split_seed)
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality

SEEDS = (0, 1, 2)


def rng(seed: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, index])


def band_power(f: np.ndarray, p: np.ndarray, low: float, high: float) -> float:
    return float(p[..., (f >= low) & (f <= high)].mean())


# ------------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("modality", ["eeg", "ecg", "emg"])
def test_generate_is_deterministic_in_seed_and_index(modality):
    spec = get_modality(modality)
    channels = list(DEFAULT_CHANNELS[modality])
    n = 2 * spec.patch_length
    a = generate(spec, channels, n, 7, 3)
    b = generate(modality, channels, n, 7, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, generate(spec, channels, n, 7, 4))
    assert not np.allclose(a, generate(spec, channels, n, 8, 3))
    assert a.shape == (len(channels), n) and a.dtype == np.float32 and np.isfinite(a).all()


@pytest.mark.parametrize("name,fs,n", [("eeg", 200.0, 800), ("eeg", 256.0, 300), ("ecg", 500.0, 1000),
                                       ("emg", 1000.0, 2000), ("emg", 200.0, 400)])
def test_generators_shapes_dtypes_any_rate(name, fs, n):
    x = GENERATORS[name](4, n, fs, rng(0))
    assert x.shape == (4, n) and x.dtype == np.float32 and np.isfinite(x).all()
    assert (x.std(axis=1) > 0).all()


def test_generate_rejects_modality_without_generator():
    spec = get_modality("eeg").replace(name="ppgtest")
    with pytest.raises(ConfigError, match=r"ppgtest.*eeg.*emg"):
        generate(spec, ["fp1"], 200, 0, 0)


def test_generate_converts_units_to_the_spec():
    spec = get_modality("ecg")
    in_uv = spec.replace(unit="uV")
    np.testing.assert_allclose(generate(in_uv, ["ii"], 400, 0, 0), 1000 * generate(spec, ["ii"], 400, 0, 0),
                               rtol=1e-6)


# --------------------------------------------------------------------------------------------------- EEG
def test_eeg_amplitude_and_spectrum():
    for seed in SEEDS:
        x = synth_eeg(19, 60 * 200, 200.0, rng(seed), channels=EEG_1020_MONTAGE)
        assert 5.0 < x.std(axis=1).mean() < 100.0, "EEG std outside 5..100 uV"
        f, p = welch(x, fs=200.0, nperseg=400)
        p = p.mean(axis=0)
        alpha = band_power(f, p, 8, 12)
        neighbours = 0.5 * (band_power(f, p, 5, 7) + band_power(f, p, 14, 18))
        assert alpha > 2 * neighbours, f"seed {seed}: no alpha peak ({alpha:.2f} vs {neighbours:.2f})"
        assert band_power(f, p, 1, 4) > band_power(f, p, 20, 30), f"seed {seed}: no 1/f trend"
        assert band_power(f, p, 49, 51) > 2 * band_power(f, p, 40, 45), f"seed {seed}: no 50 Hz line"


def test_eeg_alpha_is_posterior_and_channels_are_spatially_correlated():
    x = synth_eeg(19, 60 * 200, 200.0, rng(3), channels=EEG_1020_MONTAGE)
    f, p = welch(x, fs=200.0, nperseg=400)
    alpha = p[:, (f >= 8) & (f <= 12)].mean(axis=1)
    names = list(EEG_1020_MONTAGE)
    posterior = [names.index(c) for c in ("o1", "o2", "p3", "pz", "p4")]
    frontal = [names.index(c) for c in ("fp1", "fp2", "f7", "f3", "fz", "f4", "f8")]
    assert alpha[posterior].mean() > 2 * alpha[frontal].mean()
    corr = np.corrcoef(x)
    assert corr[names.index("c3"), names.index("cz")] > corr[names.index("fp1"), names.index("o2")]
    assert corr[names.index("o1"), names.index("o2")] > 0.3


def test_eeg_positions_from_names():
    pos = eeg_positions(["Fp1", "Oz", "C4", "t3", "xyz"], 5)
    assert pos[0, 1] > 0.8 and pos[0, 0] < 0       # front left
    assert pos[1, 1] < -0.8 and pos[1, 0] == 0     # back centre
    assert pos[2, 0] > 0 and pos[2, 1] == 0        # right central
    assert pos[3, 0] < -0.8                         # old T3 = T7, far left
    assert np.isfinite(pos).all()                   # unknown name -> grid fallback


# --------------------------------------------------------------------------------------------------- ECG
def test_ecg_heart_rate_variability_amplitude_and_limb_identities():
    fs = 200.0
    for seed in SEEDS:
        x = synth_ecg(12, int(30 * fs), fs, rng(seed))
        lead_i, lead_ii, lead_iii, avr, avl, avf = x[:6]
        np.testing.assert_allclose(lead_iii, lead_ii - lead_i, atol=1e-5)
        np.testing.assert_allclose(avr, -(lead_i + lead_ii) / 2, atol=1e-5)
        np.testing.assert_allclose(avl, lead_i - lead_ii / 2, atol=1e-5)
        np.testing.assert_allclose(avf, lead_ii - lead_i / 2, atol=1e-5)

        peaks, _ = find_peaks(lead_ii, height=0.5 * lead_ii.max(), distance=int(0.3 * fs))
        rr = np.diff(peaks) / fs
        heart_rate = 60.0 / rr.mean()
        assert 50.0 <= heart_rate <= 100.0, f"seed {seed}: heart rate {heart_rate:.1f} bpm"
        assert rr.std() > 0.010, f"seed {seed}: RR std {1000 * rr.std():.1f} ms, no variability"
        r_amplitude = np.median(lead_ii[peaks]) - np.median(lead_ii)
        assert 0.5 <= r_amplitude <= 3.0, f"seed {seed}: R amplitude {r_amplitude:.2f} mV"
        # Morphology: aVR is inverted, V1 is dominated by its S wave, V5 by its R wave.
        assert np.median(avr[peaks]) < 0
        v1, v5 = x[6], x[10]
        assert -v1.min() > v1.max() and v5.max() > -v5.min()


def test_ecg_channel_names_select_leads():
    full = synth_ecg(15, 600, 200.0, rng(5))
    picked = synth_ecg(3, 600, 200.0, rng(5), channels=["V2", "ii", "vz"])
    np.testing.assert_array_equal(picked[1], full[ECG_LEADS.index("ii")])
    np.testing.assert_array_equal(picked[0], full[ECG_LEADS.index("v2")])
    np.testing.assert_array_equal(picked[2], full[ECG_LEADS.index("vz")])
    with pytest.raises(ConfigError, match="v7"):
        synth_ecg(1, 600, 200.0, rng(5), channels=["v7"])


# --------------------------------------------------------------------------------------------------- EMG
def test_emg_band_and_bursts():
    fs = 1000.0
    for seed in SEEDS:
        x = synth_emg(8, int(10 * fs), fs, rng(seed))
        f, p = welch(x, fs=fs, nperseg=1000)
        p = p.sum(axis=0)
        assert p[f > 20].sum() > 0.8 * p.sum(), f"seed {seed}: EMG power not above 20 Hz"
        assert p[(f >= 20) & (f <= 450)].sum() > 0.9 * p.sum()
        rms = np.sqrt(np.convolve((x ** 2).mean(axis=0), np.ones(100) / 100, mode="valid"))  # 100 ms RMS
        on, off = np.percentile(rms, 95), np.percentile(rms, 5)
        assert on > 3 * off, f"seed {seed}: bursts not visible (on/off {on / off:.1f})"
        assert on > 10 * off, f"seed {seed}: burst RMS {on:.1f} uV not >> rest RMS {off:.1f} uV"
        assert 10.0 < on < 1000.0  # active sEMG: tens to hundreds of uV


def test_emg_at_200_hz_stays_below_nyquist_and_neighbours_correlate():
    x = synth_emg(8, 4000, 200.0, rng(1))
    f, p = welch(x, fs=200.0, nperseg=200)
    assert p[:, f > 97].sum() < 0.02 * p.sum()
    y = synth_emg(16, 10000, 1000.0, rng(2))
    corr = np.corrcoef(y)
    neighbours = np.mean([corr[i, (i + 1) % 16] for i in range(16)])
    opposite = np.mean([abs(corr[i, (i + 8) % 16]) for i in range(16)])
    assert neighbours > 0.2 and neighbours > 3 * opposite


# -------------------------------------------------------------------------------------------- DataModule
@pytest.mark.parametrize("modality,window,channels", [("eeg", 4.0, 19), ("ecg", 2.0, 12), ("emg", 0.4, 8)])
def test_datamodule_batches(modality, window, channels):
    dm = SyntheticDataModule(modality=modality, window_seconds=window, train_windows=6, val_windows=4,
                             test_windows=4, batch_size=4)
    spec = dm.spec
    samples = int(round(window * spec.sampling_rate))
    train = next(iter(dm.train_dataloader()))
    val = next(iter(dm.val_dataloader()))
    assert train["signal"].shape == (4, channels, samples) and train["signal"].dtype == torch.float32
    assert train["channel_ids"].shape == (4, channels) and train["channel_ids"].dtype == torch.long
    expected_ids = [spec.channel_index(c) for c in DEFAULT_CHANNELS[modality]]
    assert train["channel_ids"][0].tolist() == expected_ids and dm.channels == list(DEFAULT_CHANNELS[modality])
    assert not torch.allclose(train["signal"], val["signal"])
    assert [b["signal"].shape[0] for b in dm.train_dataloader()] == [4, 2]
    predict = next(iter(dm.predict_dataloader()))
    assert torch.equal(predict["signal"], next(iter(dm.test_dataloader()))["signal"])
    # Same configuration, same data (resumable, reproducible).
    again = SyntheticDataModule(modality=modality, window_seconds=window, train_windows=6, batch_size=4)
    assert torch.equal(next(iter(again.train_dataloader()))["signal"], train["signal"])


def test_splits_use_distinct_seeds():
    seeds = {split_seed(s, split) for s in range(3) for split in ("train", "val", "test")}
    assert len(seeds) == 9
    assert split_seed(0, "val") == split_seed(0, "val")


def test_dataset_custom_channels_and_errors():
    ds = SyntheticDataset("eeg", ["O1", "Oz", "O2"], window_seconds=2.0, num_windows=3, seed=1)
    item = ds[2]
    assert item["signal"].shape == (3, 400)
    assert item["channel_ids"].tolist() == [get_modality("eeg").channel_index(c) for c in ("o1", "oz", "o2")]
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ConfigError, match=r"window_seconds.*1 s"):
        SyntheticDataset("eeg", window_seconds=2.5, num_windows=2)
    with pytest.raises(ConfigError, match=r"window_seconds.*0\.2 s"):
        SyntheticDataModule(modality="emg", window_seconds=0.3)
    with pytest.raises(ConfigError, match=r"'Fp9'.*'xx'"):
        SyntheticDataset("eeg", ["Fp1", "Fp9", "xx"], window_seconds=1.0, num_windows=1)
    with pytest.raises(ConfigError, match="train_windows"):
        SyntheticDataModule(train_windows=0)
    with pytest.raises(ConfigError, match="unknown modality"):
        SyntheticDataModule(modality="meg")


def test_datamodule_is_configurable_by_jsonargparse():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(SyntheticDataModule, "data")
    cfg = parser.parse_args(["--data.modality=ecg", "--data.channels=[ii, v1]", "--data.window_seconds=1.0",
                             "--data.batch_size=2"])
    dm = SyntheticDataModule(**cfg.data.as_dict())
    assert dm.channels == ["ii", "v1"] and next(iter(dm.val_dataloader()))["signal"].shape == (2, 2, 200)
