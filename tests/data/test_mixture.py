"""Pretraining mixture: one channel set per batch, weights, determinism, modality check."""

from __future__ import annotations

from collections import Counter

import pytest

from neurorvq.datamodules.mixture import MixtureDataModule
from neurorvq.errors import ConfigError

from test_windows import FakeModule, fake_root  # noqa: E402  (the in-memory RecordingDataModule of the base tests)


def components(tmp_path):
    a = FakeModule(str(fake_root(tmp_path / "a", ["S1_0.rec", "S3_0.rec", "S4_0.rec", "S5_0.rec"])),
                   window_seconds=1.0, batch_size=2, val_fraction=0.0, test_fraction=0.0, verbose=False)
    b = FakeModule(str(fake_root(tmp_path / "b", ["S2_0.rec", "S2_1.rec", "S6_0.rec"])),  # S2: 2 channels
                   window_seconds=1.0, batch_size=2, val_fraction=0.0, test_fraction=0.0, verbose=False)
    return a, b


def test_batches_hold_one_channel_set_and_cover_everything(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mixture = MixtureDataModule(list(components(tmp_path)), seed=1)
    mixture.setup("fit")
    batches = list(mixture.train_dataloader())
    assert all(len(set(map(tuple, b["channel_ids"].tolist()))) == 1 for b in batches)
    assert {b["channel_ids"].shape[1] for b in batches} == {2, 19}  # both montages, never mixed
    assert sum(b["signal"].shape[0] for b in batches) >= 21  # 7 recordings x 3 windows, each at least once
    again = [b["signal"].sum().item() for b in mixture.train_dataloader()]
    assert again == [b["signal"].sum().item() for b in batches]  # deterministic by seed and epoch


def test_weights_steer_the_draw(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = components(tmp_path)
    mixture = MixtureDataModule([a, b], weights=[0.0, 1.0], batches_per_epoch=12)
    mixture.setup("fit")
    sizes = Counter(batch["channel_ids"].shape[1] for batch in mixture.train_dataloader())
    # component b only: its S2 windows (2 channels) and S6 windows (19 channels), cycled to 12 batches
    assert sum(sizes.values()) == 12
    assert sizes[2] > 0


def test_modalities_must_agree(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, _ = components(tmp_path)
    other = FakeModule(str(fake_root(tmp_path / "b", ["S9_0.rec"])), modality="ecg", verbose=False)
    with pytest.raises(ConfigError, match=r"different signals: component 1 \('ecg'\) vs component 0 \('eeg'\): "
                                          r"unit mV vs uV; patch_length=40 vs patch_length=200 samples; a different "
                                          r"channel vocabulary \(15 vs 104 names\)"):
        MixtureDataModule([a, other])
    with pytest.raises(ConfigError, match="weights"):
        MixtureDataModule([a], weights=[1.0, 2.0])
