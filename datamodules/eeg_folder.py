"""A folder of EEG recordings in any common file format, for unlabelled pretraining
(``neurorvq.datamodules.eeg_folder``).

Every file under ``root`` (recursively) with a supported extension is read with MNE's reader for it:

=============================  ====================================
extension                      reader
=============================  ====================================
``.edf``                       ``mne.io.read_raw_edf``
``.bdf``                       ``mne.io.read_raw_bdf``
``.gdf``                       ``mne.io.read_raw_gdf``
``.fif``, ``.fif.gz``          ``mne.io.read_raw_fif``
``.vhdr`` (BrainVision)        ``mne.io.read_raw_brainvision``
``.set`` (EEGLAB)              ``mne.io.read_raw_eeglab``
=============================  ====================================

(BrainVision ``.eeg``/``.vmrk`` and EEGLAB ``.fdt`` companions are read through their header file.) Channels
are mapped onto the EEG vocabulary by the pipeline's channel mapping (unknown ones are dropped and listed in
the summary); recordings with different montages form different channel-set buckets. Files whose channels are
not named by electrode (anonymised exports: ``EEG 000`` ... ``EEG 031``) are renamed with ``channel_map``, a
mapping or a CSV/TSV/JSON file of ``old,new`` pairs (:mod:`neurorvq.data.channel_map`): every name it lists
must be a channel of every file (an error naming the file otherwise) unless ``channel_map_partial=True``.
Windows are sliding, unlabelled. The subject of a file (the unit of the train/val/test split) is the name of its
parent folder (``subject_from='parent'``, e.g. ``sub-01/ses-1/...`` -> ``ses-1``; use ``'top'`` for the first
folder under ``root``, ``sub-01``) or its file stem (``'stem'``, one subject per file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from neurorvq.data.channel_map import check_recording_channels, load_channel_map, with_channel_map
from neurorvq.data.preprocess import Pipeline
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.errors import ConfigError


def _readers() -> dict[str, Callable]:
    import mne

    return {".edf": mne.io.read_raw_edf, ".bdf": mne.io.read_raw_bdf, ".gdf": mne.io.read_raw_gdf,
            ".fif": mne.io.read_raw_fif, ".fif.gz": mne.io.read_raw_fif, ".vhdr": mne.io.read_raw_brainvision,
            ".set": mne.io.read_raw_eeglab}


EXTENSIONS: tuple[str, ...] = (".edf", ".bdf", ".gdf", ".fif", ".fif.gz", ".vhdr", ".set")
"""Supported file extensions (lower case)."""

SUBJECT_FROM = ("parent", "top", "stem")


def file_extension(path: Path) -> str | None:
    """The supported extension of ``path`` (case-insensitive), or ``None``."""
    name = path.name.lower()
    for ext in sorted(EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return None


class EEGFolderDataModule(RecordingDataModule):
    """Unlabelled sliding windows from every EEG file under ``root`` (formats in the module docstring).

    Args:
        root: the folder to search (recursively unless ``recursive=False``).
        extensions: restrict to these extensions (e.g. ``['.edf']``); ``None`` = all supported.
        subject_from: ``'parent'`` (parent folder name, default), ``'top'`` (first folder below ``root``) or
            ``'stem'`` (file name without extension).
        recursive: search sub-folders.
        channel_map: recording channel -> EEG vocabulary name, as a mapping (``{"EEG 000": "fp1", ...}``) or the
            path of a CSV/TSV/JSON file of ``old,new`` pairs (:func:`~neurorvq.data.channel_map.load_channel_map`;
            checked at construction). Applied before the automatic mapping; channels neither in it nor in the
            vocabulary are dropped and listed in the summary.
        channel_map_partial: allow recordings that lack some names of ``channel_map`` (a folder mixing montages;
            the missing names are listed in the summary's dropped channels). By default a missing name is a
            :class:`~neurorvq.errors.ConfigError` naming the file.
        window_seconds / stride_seconds: window length and step [s].
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, C, T] uV at 200 Hz, "channel_ids": int64 [B, C], "subject": int64 [B]}``;
    C is that of the batch's channel set. Subject ids are positions in :attr:`subject_names` (sorted).
    """

    dataset_name = "EEG folder"
    root_layout = f"EEG recordings ({', '.join(EXTENSIONS)})"

    def __init__(self, root: str, extensions: list[str] | None = None, subject_from: str = "parent",
                 recursive: bool = True, channel_map: dict[str, str] | str | None = None,
                 channel_map_partial: bool = False, **common: Any) -> None:
        if subject_from not in SUBJECT_FROM:
            raise ConfigError(f"subject_from is {subject_from!r}; use one of {list(SUBJECT_FROM)}")
        if extensions is not None:
            normalised = [e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions]
            unknown = sorted(set(normalised) - set(EXTENSIONS))
            if unknown or not normalised:
                raise ConfigError(f"extensions {unknown or extensions} are not supported; use some of "
                                  f"{list(EXTENSIONS)}")
            extensions = normalised
        super().__init__(root, modality="eeg", **common)
        self.extensions = tuple(extensions) if extensions is not None else EXTENSIONS
        self.subject_from = subject_from
        self.recursive = bool(recursive)
        self.channel_map = load_channel_map(channel_map, self.spec)
        self.channel_map_partial = bool(channel_map_partial)
        self.make_pipeline()  # a channel_map the steps cannot apply fails here, not at setup

    def make_pipeline(self) -> Pipeline:
        """The pipeline (``steps`` or the EEG default) with :attr:`channel_map` in its ``PickChannels`` step."""
        return with_channel_map(super().make_pipeline(), self.channel_map)

    def subject_of(self, path: Path) -> str:
        """The subject name of ``path`` under :attr:`subject_from`."""
        if self.subject_from == "stem":
            ext = file_extension(path) or path.suffix
            return path.name[: len(path.name) - len(ext)]
        if self.subject_from == "top":
            parts = path.relative_to(self.root).parts
            return parts[0] if len(parts) > 1 else self.root.name
        return path.parent.name

    def find_recordings(self) -> list[RecordingInfo]:
        files = self.root.rglob("*") if self.recursive else self.root.glob("*")
        infos = []
        for path in sorted(files):
            ext = file_extension(path)
            if ext in self.extensions and path.is_file():
                infos.append(RecordingInfo(path, self.subject_of(path), None, {"extension": ext}))
        return infos

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        reader = _readers()[info.metadata["extension"]]
        raw = self.read_raw(info.path, reader)
        absent = check_recording_channels(self.channel_map, raw.ch_names, str(info.path), self.channel_map_partial)
        self._scratch.setdefault("dropped", {}).update(absent)
        recording = self.preprocess(raw, info, pipeline)
        return [self.cut(recording, info)]


__all__ = ["EEGFolderDataModule", "EXTENSIONS", "file_extension"]
