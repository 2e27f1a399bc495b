"""BrainOmni's EEG sample (``example_data.pt``) written here with ``torch.save`` in BrainOmni's format: 64 EEG rows at
standard 10-05 positions (MNE head frame, normalised as BrainOmni's ``normalize_pos`` does), two MEG rows that must
be dropped, a 10 Hz sine per EEG row at 256 Hz. Names recovered from positions, windows, units, notes, errors, the
split, and the reconstruction recipe through ``neurorvq compare-tokenizers``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from neurorvq.data.preprocess import DataError
from neurorvq.datamodules.brainomni_sample import (FILE_NAME, BrainOmniOrientationWarning, BrainOmniSampleDataModule,
                                                    name_channels, read_sample)
from neurorvq.errors import ConfigError
from neurorvq.registry import get_modality

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "benchmarks" / "recon_brainomni.yaml"
NAMES = ("Fp1 AF7 AF3 F1 F3 F5 F7 FT7 FC5 FC3 FC1 C1 C3 C5 T7 TP7 CP5 CP3 CP1 P1 P3 P5 P7 P9 PO7 PO3 O1 Iz Oz POz Pz "
         "CPz Fpz Fp2 AF8 AF4 AFz Fz F2 F4 F6 F8 FT8 FC6 FC4 FC2 FCz Cz C2 C4 C6 T8 TP8 CP6 CP4 CP2 P2 P4 P6 P8 P10 "
         "PO8 PO4 O2").split()
"""A 64-channel 10-20 cap (BioSemi 64's labels), every name in the EEG vocabulary."""
SFREQ = 256.0
SAMPLES = 1024
MEG_ROWS = (10, 65)  # file rows (the 11th and the last) holding MEG sensors (sensor_type 0 and 1, with orientations)


def amplitudes(n: int = len(NAMES)) -> np.ndarray:
    return 1.0 + 0.05 * np.arange(n)


def head_positions(names, montage: str | None = None) -> np.ndarray:
    """``[C, 3]`` positions [m] in MNE's head frame, as ``raw.set_montage`` (hence BrainOmni) places them."""
    import mne

    if montage is None:
        montage = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else "standard_1005"
    info = mne.create_info(list(names), SFREQ, "eeg")
    info.set_montage(mne.channels.make_standard_montage(montage))
    return np.array([ch["loc"][:3] for ch in info["chs"]])


def brainomni_normalised(positions: np.ndarray) -> np.ndarray:
    """BrainOmni's ``normalize_pos`` of EEG rows: centred, divided by ``sqrt(3 mean |p|^2)``."""
    centred = positions - positions.mean(axis=0)
    return centred / np.sqrt(3 * np.mean((centred ** 2).sum(axis=1)))


def write_brainomni_sample(root: Path, names=NAMES, noise_m: float = 0.001, eeg_type: int = 2,
                           positions: np.ndarray | None = None, x_scale: float = 1.0, eeg_orientation: float = 0.0,
                           seed: int = 0) -> Path:
    """``root/example_data.pt`` in BrainOmni's format; returns the file. EEG rows: ``names`` at their 10-05 head
    positions plus ``noise_m`` [m] noise, normalised as BrainOmni does (or ``positions`` as given), orientation
    ``eeg_orientation`` (BrainOmni: 0), ``x`` = ``x_scale * amplitudes()[k] * sin(2 pi 10 t)`` at 256 Hz; MEG rows
    at :data:`MEG_ROWS` (types 0 and 1, unit orientations, noise)."""
    rng = np.random.default_rng(seed)
    if positions is None:
        positions = brainomni_normalised(head_positions(names) + rng.normal(0, noise_m, (len(names), 3)))
    t = np.arange(SAMPLES) / SFREQ
    eeg_x = x_scale * amplitudes(len(names))[:, None] * np.sin(2 * np.pi * 10 * t)[None]
    eeg_pos = np.c_[positions, np.full((len(names), 3), eeg_orientation)]
    rows_x, rows_pos, rows_type = list(eeg_x), list(eeg_pos), [eeg_type] * len(names)
    for k, row in enumerate(MEG_ROWS):
        direction = rng.normal(size=3)
        rows_x.insert(row, rng.normal(0, 1, SAMPLES))
        rows_pos.insert(row, np.r_[rng.normal(0, 0.5, 3), direction / np.linalg.norm(direction)])
        rows_type.insert(row, k)
    root.mkdir(parents=True, exist_ok=True)
    path = root / FILE_NAME
    torch.save({"x": torch.tensor(np.array(rows_x), dtype=torch.float32),
                "pos": torch.tensor(np.array(rows_pos), dtype=torch.float32),
                "sensor_type": torch.tensor(rows_type, dtype=torch.int32)}, path)
    return path


def datamodule(root: Path, **options) -> BrainOmniSampleDataModule:
    return BrainOmniSampleDataModule(str(root), verbose=False, **options)


# ------------------------------------------------------------------------------------------------ loading
def test_names_windows_units_split_and_notes(tmp_path):
    write_brainomni_sample(tmp_path)
    dm = datamodule(tmp_path)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["signal"].dtype == torch.float32 and tuple(batch["signal"].shape) == (1, 64, 800)
    spec = dm.spec
    assert spec.sampling_rate == 200 and spec.unit == "uV"
    assert [spec.channels[i] for i in batch["channel_ids"][0].tolist()] == [n.lower() for n in NAMES]
    # the 10 Hz sine (40 whole periods) survives 256 -> 200 Hz; x is standardised, read as uV unchanged
    t = np.arange(800) / 200.0
    expected = amplitudes()[:, None] * np.sin(2 * np.pi * 10 * t)[None]
    np.testing.assert_allclose(batch["signal"][0].numpy(), expected, rtol=5e-3, atol=1e-3)  # edge ringing
    summary = dm.summary
    assert summary["subjects"] == {"train": [], "val": [], "test": ["sample"]}
    assert summary["windows"] == {"train": 0, "val": 0, "test": 1}
    assert summary["dropped_channels"] == {"row 10 (sensor_type 0)": "not an EEG sensor type [2]",
                                           "row 65 (sensor_type 1)": "not an EEG sensor type [2]"}
    assignment = dm.channel_assignment()
    assert [a["name"] for a in assignment] == NAMES
    assert [a["row"] for a in assignment] == [r for r in range(66) if r not in MEG_ROWS]
    assert all(0 <= a["distance_mm"] < 5 for a in assignment)
    fit = summary["notes"]["position_fit"][FILE_NAME]
    assert fit["candidates"] == "vocabulary" and fit["candidate_positions"] == 82 and fit["max_mm"] < 5
    signal = summary["notes"]["signal"][FILE_NAME]
    assert signal["eeg_rows"] == 64 and signal["other_rows"] == 2 and signal["volts_per_unit"] == 1e-6
    assert signal["eeg_orientation_max_abs"] == 0.0
    with pytest.raises(DataError, match="train split .* has no windows"):
        dm.train_dataloader()


def test_any_translation_and_scale_physical_units_and_all_candidates(tmp_path):
    """Positions in millimetres with an offset (not normalised) and x in volts: the same names, amplitudes in uV."""
    positions = head_positions(NAMES) * 1000.0 + np.array([12.0, -40.0, 7.0])
    write_brainomni_sample(tmp_path, positions=positions, x_scale=20e-6)
    dm = datamodule(tmp_path, x_unit="V", candidates="all", test_subjects=[], val_subjects=[])
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert [dm.spec.channels[i] for i in batch["channel_ids"][0].tolist()] == [n.lower() for n in NAMES]
    assert np.abs(batch["signal"][0, 0].numpy()).max() == pytest.approx(20.0, rel=0.01)
    assert np.abs(batch["signal"][0, -1].numpy()).max() == pytest.approx(20.0 * amplitudes()[-1], rel=0.01)
    fit = dm.summary["notes"]["position_fit"][FILE_NAME]
    assert fit["candidates"] == "all" and fit["candidate_positions"] == 339 and fit["max_mm"] < 1e-6
    assert fit["scale_m_per_unit"] == pytest.approx(1e-3)


def test_standardised_scale_and_window_options(tmp_path):
    write_brainomni_sample(tmp_path)
    dm = datamodule(tmp_path, standardised_uv=10.0, window_seconds=2.0)
    dm.setup("test")
    signal = dm.datasets["test"]
    assert len(signal) == 2
    first = next(iter(dm.test_dataloader()))["signal"]
    assert tuple(first.shape[1:]) == (64, 400) and np.abs(first[0, 0].numpy()).max() == pytest.approx(10.0, rel=0.01)


def test_name_rule_on_another_head_model_and_distinct_names():
    spec = get_modality("eeg")
    # BioSemi's own 64 positions (a spherical head, not the 10-05 template): every label recovered
    biosemi = head_positions(NAMES, "biosemi64")
    assert name_channels(brainomni_normalised(biosemi), spec).names == NAMES
    # two rows on (almost) one position still get two names
    positions = head_positions(NAMES)
    positions[NAMES.index("C3")] = positions[NAMES.index("C1")] + 0.001
    named = name_channels(brainomni_normalised(positions), spec)
    assert len(set(named.names)) == len(NAMES) and named.names[NAMES.index("C1")] in ("C1", "C3")
    with pytest.raises(ConfigError, match="candidates is 'grid'"):
        name_channels(positions, spec, candidates="grid")
    with pytest.raises(DataError, match="at least 4 positions"):
        name_channels(positions[:3], spec)
    with pytest.raises(DataError, match="EEG positions are degenerate"):
        name_channels(np.ones((8, 3)), spec)


def test_sensor_types_option_and_orientation_warning(tmp_path):
    write_brainomni_sample(tmp_path / "zero", eeg_type=5)
    with pytest.raises(DataError, match=r"no row of 'example_data.pt' has an EEG sensor_type \[2\] \(codes found: "
                                        r"\[0, 1, 5\]\); set data.init_args.eeg_sensor_types"):
        datamodule(tmp_path / "zero", strict=True).setup("test")
    dm = datamodule(tmp_path / "zero", eeg_sensor_types=[5])
    dm.setup("test")
    assert len(dm.datasets["test"]) == 1
    write_brainomni_sample(tmp_path / "meg_like", eeg_orientation=0.5)
    with pytest.warns(BrainOmniOrientationWarning, match="non-zero orientations .* may be MEG sensors"):
        datamodule(tmp_path / "meg_like").setup("test")


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("content, message", [
    ({"pos": torch.zeros(4, 6)}, r"has no key 'x' \(the signal \[channels, samples\]\); keys found: \['pos'\]"),
    ({"x": torch.zeros(4, 256)}, r"has no key 'pos' \(sensor positions \[channels, 6\]\)"),
    ({"x": torch.zeros(4, 256), "pos": torch.zeros(3, 6)}, r"key 'pos' has 3 rows but 'x' has 4 channels"),
    ({"x": torch.zeros(4, 256), "pos": torch.zeros(4, 2)}, r"key 'pos' has shape \[4, 2\]; expected \[channels, 6\]"),
    ({"x": torch.zeros(256), "pos": torch.zeros(4, 6)}, r"key 'x' has shape \[256\]; expected \[channels, samples\]"),
    ({"x": torch.zeros(4, 256), "pos": torch.zeros(4, 6), "sensor_type": torch.full((5,), 2)},
     r"key 'sensor_type' has shape \[5\] but 'x' has 4 channels"),
    ({"x": torch.zeros(4, 256), "pos": torch.full((4, 6), float("nan"))},
     r"key 'pos' has non-finite positions in rows \[0, 1, 2, 3\]"),
    ([torch.zeros(4, 256)], r"holds a list, not a dict with keys x, pos, sensor_type"),
])
def test_bad_files_name_the_file_and_key(tmp_path, content, message):
    path = tmp_path / FILE_NAME
    torch.save(content, path)
    with pytest.raises(DataError, match=f"'{path}'.*{message}"):
        read_sample(path)


def test_a_file_torch_cannot_read_and_a_missing_file(tmp_path):
    path = tmp_path / FILE_NAME
    path.write_text("x,pos\n1,2\n")
    with pytest.raises(DataError, match=rf"'{path}' is not a torch file that torch.load\(weights_only=True\) can "
                                        "read .*expected BrainOmni's example_data.pt"):
        read_sample(path)
    with pytest.raises(DataError, match=rf"{path}: '.*' is not a torch file"):  # strict: the DataModule names it
        datamodule(tmp_path, strict=True).setup("test")
    with pytest.raises(DataError, match=r"none of the 1 BrainOmni sample recordings .* reasons: \[.*not a torch file"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            datamodule(tmp_path).setup("test")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"reasons: \['file not found'\]"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            datamodule(empty).setup("test")


def test_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="x_unit is 'volts'"):
        datamodule(tmp_path, x_unit="volts")
    with pytest.raises(ConfigError, match="candidates is 'every'"):
        datamodule(tmp_path, candidates="every")
    with pytest.raises(ConfigError, match="file_name is 'assets/example_data.pt'"):
        datamodule(tmp_path, file_name="assets/example_data.pt")
    with pytest.raises(ConfigError, match="eeg_sensor_types is empty"):
        datamodule(tmp_path, eeg_sensor_types=[])
    with pytest.raises(ConfigError, match="standardised_uv is 0"):
        datamodule(tmp_path, standardised_uv=0)
    file = write_brainomni_sample(tmp_path)
    with pytest.raises(DataError, match="is a file, not a folder: set data.init_args.root"):
        datamodule(file)


# ------------------------------------------------------------------------------------------------ the recipe
def test_recipe_runs_through_compare_tokenizers(tmp_path):
    from neurorvq import NeuroRVQTokenizer
    from neurorvq.cli import main

    config = yaml.safe_load(RECIPE.read_text())
    assert set(config) == {"data"} and config["data"]["init_args"]["root"] == "data/benchmarks/brainomni"
    header = RECIPE.read_text().split("\ndata:")[0]
    assert "0.191" in header and "neurorvq benchmark --table reconstruction --rows brainomni --model" in header
    root = tmp_path / "brainomni"
    write_brainomni_sample(root)
    torch.manual_seed(0)
    tokenizer = NeuroRVQTokenizer("eeg", encoder_depth=1, decoder_depth=1, n_quantizers=2, codebook_size=32,
                                  code_dim=8).save_pretrained(tmp_path / "tiny")
    out = tmp_path / "out"
    assert main(["compare-tokenizers", "--tokenizers", str(tokenizer), "--data", str(RECIPE), "--set",
                 f"root={root}", "--out", str(out), "--mode", "patch", "--figure", "false", "--device", "cpu"]) == 0
    report = json.loads((out / "comparison.json").read_text())
    assert report["windows"] == 1 and report["context"]["split"] == "test"
    raw = report["tokenizers"][0]["mse"]["patch"]["raw"]
    assert np.isfinite(raw) and raw > 0
