"""Synthetic default data as a Dataset and a LightningDataModule (``neurorvq.datamodules.synthetic``).

Windows come from :mod:`neurorvq.data.synthetic` (EEG in uV, ECG in mV, EMG in uV, at the modality's sampling
rate), generated on the fly from ``(seed, index)``: nothing is downloaded or stored, every worker and every run
sees the same window ``i``, and ``num_windows`` can be as large as wanted. Use it as the out-of-the-box data
of the recipes, the demo and the tests, and as a template for real-data modules (same batch format).

Batch format (default collate): ``{"signal": float32 [B, C, T], "channel_ids": int64 [B, C]}`` where ``T =
window_seconds * sampling_rate`` (a whole number of patches) and channel ids are vocabulary positions
(``spec.channel_index``).
"""

import math
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from neurorvq.data.synthetic import GENERATORS, generate
from neurorvq.errors import ConfigError, InputError
from neurorvq.registry import ModalitySpec, get_modality, resolve_channel_ids

EEG_1020_MONTAGE: tuple[str, ...] = ("fp1", "fp2", "f7", "f3", "fz", "f4", "f8", "t3", "c3", "cz", "c4", "t4",
                                     "t5", "p3", "pz", "p4", "t6", "o1", "o2")
ECG_12_LEADS: tuple[str, ...] = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
EMG_ARMBAND_8: tuple[str, ...] = tuple(f"c{i}" for i in range(1, 9))

DEFAULT_CHANNELS: dict[str, tuple[str, ...]] = {"eeg": EEG_1020_MONTAGE, "ecg": ECG_12_LEADS, "emg": EMG_ARMBAND_8}
"""Channels used when none are given: the 19-channel 10-20 montage, the 12 standard leads, an 8-electrode armband."""

_SPLIT_TAGS = {"train": 0, "val": 1, "test": 2}


def split_seed(seed: int, split: str) -> int:
    """Seed of ``split`` ('train', 'val', 'test') derived from the data module's ``seed``.

    Hashing ``(seed, split)`` through :class:`numpy.random.SeedSequence` gives the splits unrelated 63-bit
    seeds, so their windows never coincide (neither with each other nor with another ``seed``'s splits).
    """
    if split not in _SPLIT_TAGS:
        raise ConfigError(f"split is '{split}'; use one of {sorted(_SPLIT_TAGS)}")
    if int(seed) < 0:
        raise ConfigError(f"seed is {seed}; use an integer >= 0")
    state = np.random.SeedSequence([int(seed), 0x5EED, _SPLIT_TAGS[split]]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def _window_samples(spec: ModalitySpec, window_seconds: float) -> int:
    """Samples per window; raises :class:`ConfigError` unless it is a whole, positive number of patches."""
    if not window_seconds > 0:
        raise ConfigError(f"window_seconds is {window_seconds}; give a positive length in seconds, a multiple of "
                          f"the '{spec.name}' patch length of {spec.patch_seconds:g} s")
    samples = window_seconds * spec.sampling_rate
    patches = samples / spec.patch_length
    if abs(patches - round(patches)) > 1e-6 or round(patches) < 1:
        ok = [k * spec.patch_seconds for k in (max(math.floor(patches), 1), math.floor(patches) + 1)]
        raise ConfigError(
            f"window_seconds={window_seconds} is not a whole number of '{spec.name}' patches (patch length "
            f"{spec.patch_seconds:g} s = {spec.patch_length} samples at {spec.sampling_rate:g} Hz); use a multiple "
            f"of {spec.patch_seconds:g} s, e.g. {sorted(set(round(v, 6) for v in ok))}")
    return int(round(patches)) * spec.patch_length


class SyntheticDataset(Dataset):
    """``num_windows`` synthetic windows of one modality, generated on demand from ``(seed, index)``.

    Args:
        modality: a registered modality with a synthetic generator ('eeg', 'ecg', 'emg').
        channels: vocabulary names (case-insensitive); ``None`` -> :data:`DEFAULT_CHANNELS` of the modality.
            ECG names choose which leads are generated; EEG names place the channels on the scalp (alpha is
            posterior); EMG names only set the count (electrodes evenly around the arm, in the given order).
        window_seconds: window length [s]; must be a whole number of patches (``spec.patch_seconds``).
        num_windows: length of the data set.
        seed: data set seed; window ``i`` is ``generate(spec, channels, T, seed, i)``.

    Item ``i``: ``{"signal": float32 [C, T] in spec.unit, "channel_ids": int64 [C]}``.
    """

    def __init__(self, modality: str = "eeg", channels: list[str] | None = None, window_seconds: float = 4.0,
                 num_windows: int = 512, seed: int = 0) -> None:
        super().__init__()
        self.spec = get_modality(modality)
        if self.spec.name not in GENERATORS:
            raise ConfigError(f"modality '{self.spec.name}' has no synthetic generator; available: "
                              f"{sorted(GENERATORS)}")
        if channels is None:
            channels = list(DEFAULT_CHANNELS[self.spec.name])
        if isinstance(channels, str) or not len(channels):
            raise ConfigError(f"channels is {channels!r}; give a non-empty list of '{self.spec.name}' vocabulary "
                              "names, or leave it out for the default montage")
        try:
            ids = resolve_channel_ids(self.spec, [str(c) for c in channels])
        except InputError as exc:
            raise ConfigError(f"channels: {exc}") from exc
        self.channels = [str(c).strip().lower() for c in channels]
        dupes = sorted({c for c in self.channels if self.channels.count(c) > 1})
        if dupes:
            raise ConfigError(f"channels repeats {dupes}; list each channel once")
        self.channel_ids = torch.tensor(ids, dtype=torch.long)
        self.window_seconds = float(window_seconds)
        self.num_samples = _window_samples(self.spec, self.window_seconds)
        if int(num_windows) < 1:
            raise ConfigError(f"num_windows is {num_windows}; give at least 1")
        if int(seed) < 0:
            raise ConfigError(f"seed is {seed}; use an integer >= 0")
        self.num_windows = int(num_windows)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.num_windows:
            raise IndexError(f"window {index} out of range for a SyntheticDataset of {self.num_windows} windows")
        signal = generate(self.spec, self.channels, self.num_samples, self.seed, int(index))
        return {"signal": torch.from_numpy(signal), "channel_ids": self.channel_ids.clone()}


class SyntheticDataModule(L.LightningDataModule):
    """Train/val/test/predict loaders over :class:`SyntheticDataset` windows of one modality.

    Args:
        modality: 'eeg' (200 Hz, uV), 'ecg' (200 Hz, mV) or 'emg' (1000 Hz, uV), or any registered modality
            with a generator in ``neurorvq.data.synthetic.GENERATORS``.
        channels: vocabulary names; ``None`` -> the modality's :data:`DEFAULT_CHANNELS`.
        window_seconds: window length [s], a whole number of patches (EEG 1 s, ECG 0.2 s, EMG 0.2 s patches).
        train_windows / val_windows / test_windows: windows per split (predict uses the test split).
        batch_size, num_workers: DataLoader settings.
        seed: data seed; each split gets its own derived seed (:func:`split_seed`) so splits never overlap.

    Batches: ``{"signal": float32 [B, C, T], "channel_ids": int64 [B, C]}`` with ``T = window_seconds x
    sampling_rate`` samples in ``spec.unit``.
    """

    def __init__(self, modality: str = "eeg", channels: list[str] | None = None, window_seconds: float = 4.0,
                 train_windows: int = 512, val_windows: int = 64, test_windows: int = 64, batch_size: int = 16,
                 num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size is {batch_size}; give at least 1")
        if int(num_workers) < 0:
            raise ConfigError(f"num_workers is {num_workers}; give 0 (load in the main process) or more")
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        sizes = {"train": train_windows, "val": val_windows, "test": test_windows}
        for split, size in sizes.items():
            if int(size) < 1:
                raise ConfigError(f"{split}_windows is {size}; give at least 1 window per split")
        # Built eagerly: it is cheap (windows are generated on access) and bad settings fail at configuration time.
        self.datasets: dict[str, SyntheticDataset] = {
            split: SyntheticDataset(modality, channels, window_seconds, size, split_seed(seed, split))
            for split, size in sizes.items()
        }

    @property
    def spec(self) -> ModalitySpec:
        """The modality's :class:`~neurorvq.registry.ModalitySpec`."""
        return self.datasets["train"].spec

    @property
    def channels(self) -> list[str]:
        """Channel names (lower-case vocabulary names), in the order of the signal rows."""
        return list(self.datasets["train"].channels)

    @property
    def channel_ids(self) -> torch.Tensor:
        """Vocabulary ids ``int64 [C]`` of :attr:`channels`."""
        return self.datasets["train"].channel_ids.clone()

    @property
    def num_samples(self) -> int:
        """Samples per window, T."""
        return self.datasets["train"].num_samples

    window_samples = num_samples  # the name compatibility checks read (neurorvq.compat.Signal.of)

    def channel_names_used(self) -> list[str]:
        """The channels every window carries (the compatibility check needs only these in a model's vocabulary)."""
        return list(self.datasets["train"].channels)

    def _loader(self, split: str) -> DataLoader:
        # shuffle=False on purpose, train included: every window is an independent random draw already, and a
        # fixed order makes a resumed run see exactly the batches the uninterrupted run would have seen.
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")


__all__ = ["DEFAULT_CHANNELS", "ECG_12_LEADS", "EEG_1020_MONTAGE", "EMG_ARMBAND_8", "SyntheticDataModule",
           "SyntheticDataset", "split_seed"]
