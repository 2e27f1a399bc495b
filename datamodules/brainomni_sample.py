"""BrainOmni's EEG sample (``assets/example_data.pt`` of OpenTSLab/BrainOmni) as a LightningDataModule
(``neurorvq.datamodules.brainomni_sample``): the "BrainOmni EEG sample (OOD)" reconstruction row
(benchmarks.md §6.3; published NeuroRVQ raw MSE 0.191).

What the file holds (findings, with sources; the file itself could not be opened here: no network):

* A dict saved with ``torch.save``, read in BrainOmni's ``demo.ipynb`` with ``torch.load(..., weights_only=True)``:
  ``x`` ``[64, 1024]`` (the demo's comment: "Channel Time 4s*256hz"), ``pos`` ``[64, 6]`` and ``sensor_type``
  ``[64]`` (int32; the demo prints 64 times ``2``). These are the keys of the segment files that BrainOmni's
  preprocessing writes (``factory/utils.py``, ``split_to_segments_save``: ``{"x", "pos", "sensor_type"}``), so the
  sample is read as one such segment [I].
* ``pos`` (``factory/utils.py``, ``extract_pos_sensor_type`` and ``normalize_pos``): columns 0-2 are the channel's
  ``info["chs"][k]["loc"][:3]``, i.e. its position in MNE's head frame in meters after ``raw.set_montage`` (an MNE
  standard montage or a custom one per dataset); columns 3-5 are zeros for EEG and the coil orientation for MEG.
  The EEG positions are then **centred on their mean and divided by** ``sqrt(3 * mean(|p|^2))``: they are
  dimensionless, known only up to a translation and an isotropic scale.
* ``x`` (``factory/utils.py``, ``filter_resample_preprocess`` and ``sensortype_wise_normalize``; ``constant.py``):
  notch 50 and 60 Hz, resampled to ``SAMPLE_RATE = 256`` Hz, band-passed ``LOW = 0.1`` to ``HIGH = 96`` Hz, bad
  channels interpolated; then per segment the EEG channels' mean at each sample is subtracted (a common average
  reference) and the result divided by its overall std: **dimensionless, standardised**, not volts or µV.
* ``sensor_type``: BrainOmni's ``factory/brain_constant.py`` defines ``SENSOR_TYPE_DICT = {"EEG": 0, "MAG": 1,
  "GRAD": 2}``, under which ``2`` would be a planar gradiometer; benchmarks.md §6.3 and its source [S3] call the
  sample EEG ("all 2 = EEG"). Which holds is **uncertain**: ``eeg_sensor_types`` (default ``[2]``) says which
  codes are kept as EEG, and because BrainOmni writes zero orientations for EEG rows only, loading warns
  (:class:`BrainOmniOrientationWarning`) when a kept row has a non-zero orientation and records the largest one
  in the summary's notes.
* Also unknown: which recording, dataset and montage the sample comes from, and how the NeuroRVQ authors named
  its channels, filtered and scaled it.

Channel names [I, this loader's rule] (:func:`name_channels`). The file has no channel names; each EEG row is named
by a standard 10-05 position:

1. Reference: MNE's ``standard_1005`` montage (``colin27_1005`` in recent MNE, the same positions under its new
   name) placed on an ``Info`` with ``set_montage``, so in MNE's head frame in meters, as BrainOmni's positions were
   before normalising. Names sharing a position (``T3``/``T7``, ``T4``/``T8``, ``T5``/``P7``, ``T6``/``P8``) keep
   the first in montage order (``T7``, ``T8``, ``P7``, ``P8``). Candidates (``candidates``): by default only the
   positions whose names the modality's vocabulary holds (82 for NeuroRVQ's EEG vocabulary); ``"all"`` uses all
   339. A sample with more EEG rows than vocabulary candidates uses all.
2. Initial fit: a least-squares sphere through the sample's positions and one through the candidates; the scale
   is the ratio of their radii, the translation maps one centre onto the other.
3. Iterate (at most 100 times, until the assignment repeats): transform the sample, assign every row a distinct
   candidate minimising the summed Euclidean distance (``scipy.optimize.linear_sum_assignment``, so two rows never
   share a name), refit the isotropic scale and translation by least squares to the assigned positions. No
   rotation: both sides are in MNE's head frame and BrainOmni only translates and scales.
4. The assignment (file row -> name, distance in mm after the fit) and the fit are recorded in the summary's
   ``notes`` (``channel_names``, ``position_fit``).

Why vocabulary candidates by default: the full 10-05 grid is dense (median nearest-neighbour distance 15 mm, vs
30 mm among the vocabulary's positions), and a cap on another head model slides by half a row there. Checked with
MNE's montages normalised as BrainOmni does: exact 10-05 subsets (64 random vocabulary names, the 64 EEGMMIDB
names, 19 10-20 names) are recovered exactly with either candidate set, and with vocabulary candidates also under
2 mm noise per axis (all 339: one name wrong in 5 noisy EEGMMIDB trials); ``biosemi64`` gets 64/64 names right with
vocabulary candidates but 16/64 with all 339 positions, ``biosemi32`` 31/32 vs 6/32, ``easycap-M1`` 64/74 (its
lowest ring, e.g. ``FT9``, ``P9``, lands one row up) vs 22/74. Channels whose names the vocabulary lacks
(``candidates: all``) are dropped by ``PickChannels`` and listed in the summary's ``dropped_channels``. To use the
older names for the aliased positions, give ``steps`` whose ``PickChannels`` has ``explicit: {T7: t3, T8: t4, P7:
t5, P8: t6}``.

Signal: a ``RawArray`` in volts built from the kept rows of ``x`` read in ``x_unit``: ``"standardised"`` (default,
BrainOmni's) multiplies by ``standardised_uv`` µV per unit (default 1: the stored numbers are taken as µV
unchanged; the reconstruction metric standardises every window, so the scale does not change it), or ``"V"``,
``"mV"``, ``"uV"`` for a file in physical units. The rate is ``sampling_rate`` (256 Hz). Default steps, minimal
[choice]: ``Resample`` 256 -> 200 Hz (1024 -> 800 samples) and ``PickChannels``. The sample is already notched,
band-limited to 0.1-96 Hz and average-referenced by BrainOmni, and benchmarks.md §6.3 names only the resampling;
give ``steps`` to add e.g. the EEG benchmark's ``BandPass`` 0.5-45 Hz. Windows: ``window_seconds`` (default 4 s =
800 samples at 200 Hz: the whole sample, one window) float32 µV.

Subjects and split: the file is one recording of subject ``"sample"``. With no ``split`` and neither
``val_subjects`` nor ``test_subjects`` given, the sample is the **test** split (train and val empty), so the
comparison harness's default ``--split test`` reads it; give ``test_subjects: []`` to put it in train instead.

Layout and download: ``root`` is a folder holding ``example_data.pt`` (``file_name``). :func:`download` fetches it
from GitHub (needs internet). Licence: MIT (OpenTSLab/BrainOmni's LICENSE). Citation: Xiao Q, Cui Z, Zhang C, Chen
S, Wu W, Thwaites A, Woolgar A, Zhou B, Zhang C. BrainOmni: A Brain Foundation Model for Unified EEG and MEG
Signals. NeurIPS 2025, https://arxiv.org/abs/2505.18185.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.data.channels import map_channels
from neurorvq.data.datamodule import RecordingDataModule
from neurorvq.data.preprocess import DataError, Pipeline, steps_from_config
from neurorvq.data.recording import RecordingInfo
from neurorvq.data.windowset import WindowSet
from neurorvq.errors import ConfigError
from neurorvq.registry import ModalitySpec

FILE_NAME = "example_data.pt"
"""The sample's file name in BrainOmni's ``assets/`` folder and under ``root``."""
SUBJECT = "sample"
"""Subject name of the sample (the unit of the split)."""
SAMPLING_RATE = 256.0
"""Hz: BrainOmni's ``SAMPLE_RATE`` (``constant.py``) and the demo's "4s*256hz"."""
EEG_SENSOR_TYPE = 2
"""The sample's ``sensor_type`` code read as EEG by default (benchmarks.md §6.3; see the module docstring)."""
REVISION = "8a3914b043b3c811dd3b2988e3a285fa4004cabc"
"""The OpenTSLab/BrainOmni commit :func:`download` reads (pinned: the benchmark's file must not change)."""
URL = "https://raw.githubusercontent.com/OpenTSLab/BrainOmni/{revision}/assets/example_data.pt"
CANDIDATES = ("vocabulary", "all")
X_UNITS: dict[str, float | None] = {"standardised": None, "V": 1.0, "mV": 1e-3, "uV": 1e-6}
"""``x_unit`` -> volts per unit (``None``: ``standardised_uv`` µV per unit)."""
MIN_EEG_ROWS = 4  # a sphere (and so the initial scale) needs four points
MAX_ITERATIONS = 100


class BrainOmniOrientationWarning(UserWarning):
    """Rows kept as EEG carry a non-zero orientation (``pos[:, 3:]``), which BrainOmni writes only for MEG."""


# ------------------------------------------------------------------------------------------------ the file
@dataclass
class BrainOmniSample:
    """The content of a BrainOmni sample file.

    x: ``float64 [C, T]`` in the file's unit; positions: ``float64 [C, 3]`` (``pos[:, :3]``); orientations:
    ``float64 [C, k]`` (``pos[:, 3:]``, k = 3 in BrainOmni's files); sensor_type: ``int64 [C]`` (all ``2`` when
    the file has none); path: the file.
    """

    x: np.ndarray
    positions: np.ndarray
    orientations: np.ndarray
    sensor_type: np.ndarray
    path: Path


def _array(value: Any, path: Path, key: str) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        array = value.detach().cpu()
        return (array.float() if array.is_floating_point() else array).numpy()
    if isinstance(value, np.ndarray):
        return value
    raise DataError(f"'{path}': key '{key}' holds a {type(value).__name__}, not a tensor")


def _drop_batch(array: np.ndarray, ndim: int) -> np.ndarray:
    """``[1, ...]`` (the demo's batched form) -> ``[...]``."""
    return array[0] if array.ndim == ndim + 1 and array.shape[0] == 1 else array


def read_sample(path: str | Path) -> BrainOmniSample:
    """Read and check a BrainOmni sample file (``torch.load(weights_only=True)``). A file torch cannot read, one
    that is not a dict, a missing ``x`` / ``pos``, shapes that disagree or non-finite positions raise
    :class:`DataError` naming the file and the key."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"'{path}' not found: download BrainOmni's example_data.pt (neurorvq.datamodules."
                        "brainomni_sample.download) or set data.init_args.root / file_name")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, truncated, or objects weights_only refuses
        raise DataError(f"'{path}' is not a torch file that torch.load(weights_only=True) can read "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); expected "
                        "BrainOmni's example_data.pt, a dict with keys x, pos, sensor_type") from exc
    if not isinstance(content, dict):
        raise DataError(f"'{path}' holds a {type(content).__name__}, not a dict with keys x, pos, sensor_type")
    for key, what in (("x", "the signal [channels, samples]"), ("pos", "sensor positions [channels, 6]")):
        if key not in content:
            raise DataError(f"'{path}' has no key '{key}' ({what}); keys found: {sorted(map(str, content))}")
    x = _drop_batch(_array(content["x"], path, "x"), 2)
    pos = _drop_batch(_array(content["pos"], path, "pos"), 2)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise DataError(f"'{path}': key 'x' has shape {list(x.shape)}; expected [channels, samples]")
    if pos.ndim != 2 or pos.shape[1] < 3:
        raise DataError(f"'{path}': key 'pos' has shape {list(pos.shape)}; expected [channels, 6] (x, y, z, then "
                        "the orientation)")
    if pos.shape[0] != x.shape[0]:
        raise DataError(f"'{path}': key 'pos' has {pos.shape[0]} rows but 'x' has {x.shape[0]} channels")
    if "sensor_type" in content:
        types = _drop_batch(_array(content["sensor_type"], path, "sensor_type"), 1)
        if types.ndim != 1 or types.shape[0] != x.shape[0]:
            raise DataError(f"'{path}': key 'sensor_type' has shape {list(types.shape)} but 'x' has {x.shape[0]} "
                            "channels; expected one code per channel")
        if not np.all(np.isfinite(types.astype(np.float64))) or np.any(types != np.round(types)):
            raise DataError(f"'{path}': key 'sensor_type' holds non-integer codes")
        types = types.astype(np.int64)
    else:
        types = np.full(x.shape[0], EEG_SENSOR_TYPE, dtype=np.int64)
    pos = pos.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(pos[:, :3]).all(axis=1))
    if bad.size:
        raise DataError(f"'{path}': key 'pos' has non-finite positions in rows {bad[:10].tolist()}")
    return BrainOmniSample(x.astype(np.float64), pos[:, :3], pos[:, 3:], types, path)


# ------------------------------------------------------------------------------------------------ names
@functools.lru_cache(maxsize=1)
def montage_positions() -> tuple[str, tuple[str, ...], np.ndarray]:
    """``(montage name, names, positions float64 [N, 3])``: MNE's standard 10-05 montage in the head frame [m],
    one name per position (the first in montage order where several share one)."""
    import mne

    name = "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else "standard_1005"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # 'standard_1005' is deprecated from MNE 1.13
        montage = mne.channels.make_standard_montage(name)
    info = mne.create_info(list(montage.ch_names), 256.0, "eeg")
    info.set_montage(montage)
    locations = np.array([ch["loc"][:3] for ch in info["chs"]], dtype=np.float64)
    keep: list[int] = []
    for i, point in enumerate(locations):
        if not any(np.linalg.norm(point - locations[j]) < 1e-6 for j in keep):
            keep.append(i)
    positions = locations[keep]
    positions.setflags(write=False)
    return name, tuple(montage.ch_names[i] for i in keep), positions


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through ``points [N, 3]`` (N >= 4): ``(centre [3], radius)``."""
    design = np.c_[2.0 * points, np.ones(len(points))]
    solution = np.linalg.lstsq(design, (points ** 2).sum(axis=1), rcond=None)[0]
    centre = solution[:3]
    return centre, float(math.sqrt(max(solution[3] + centre @ centre, 0.0)))


@dataclass
class ChannelNames:
    """How :func:`name_channels` named the rows: ``names[k]`` and ``distances[k]`` [m] (after the fit, in the
    montage's head frame) per row, the fit ``montage_point = scale * point + translation`` and its iterations."""

    names: list[str]
    distances: np.ndarray
    scale: float
    translation: np.ndarray
    iterations: int
    montage: str
    candidates: str
    candidate_count: int

    def fit_summary(self) -> dict[str, Any]:
        """The fit as JSON-ready numbers (summary notes)."""
        mm = self.distances * 1e3
        return {"montage": self.montage, "candidates": self.candidates, "candidate_positions": self.candidate_count,
                "scale_m_per_unit": self.scale, "translation_m": [round(float(v), 6) for v in self.translation],
                "iterations": self.iterations, "rms_mm": round(float(np.sqrt(np.mean(mm ** 2))), 3),
                "max_mm": round(float(mm.max()), 3)}


def name_channels(positions: np.ndarray, spec: ModalitySpec | None = None,
                  candidates: str = "vocabulary") -> ChannelNames:
    """Name every row of ``positions [C, 3]`` (any translation and isotropic scale of MNE head coordinates) by a
    distinct standard 10-05 position (the rule of the module docstring). ``candidates``: ``"vocabulary"`` (the
    positions whose names ``spec``'s vocabulary holds; needs ``spec``) or ``"all"``."""
    from scipy.optimize import linear_sum_assignment

    if candidates not in CANDIDATES:
        raise ConfigError(f"candidates is {candidates!r}; use one of {list(CANDIDATES)}")
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3 or len(positions) < MIN_EEG_ROWS:
        raise DataError(f"need at least {MIN_EEG_ROWS} positions [C, 3] to fit them to the 10-05 montage; got "
                        f"shape {list(positions.shape)}")
    montage, names, reference = montage_positions()
    used = "all"
    if candidates == "vocabulary":
        if spec is None:
            raise ConfigError("candidates='vocabulary' needs the modality spec (its vocabulary)")
        picks = map_channels(list(names), spec).picks
        if len(positions) <= len(picks):
            names, reference, used = tuple(names[i] for i in picks), reference[picks], "vocabulary"
    centre, radius = fit_sphere(positions)
    ref_centre, ref_radius = fit_sphere(reference)
    mean = positions.mean(axis=0)
    centred = positions - mean
    if not (radius > 0 and np.isfinite(radius)) or not (centred ** 2).sum() > 0:
        raise DataError("the EEG positions are degenerate (all equal, or no sphere fits them); check key 'pos'")
    scale = ref_radius / radius
    translation = ref_centre - scale * centre
    previous: np.ndarray | None = None
    iterations = 0
    for iterations in range(1, MAX_ITERATIONS + 1):
        moved = scale * positions + translation
        cost = np.linalg.norm(moved[:, None, :] - reference[None, :, :], axis=2)
        _, assigned = linear_sum_assignment(cost)
        target = reference[assigned]
        scale = float((centred * (target - target.mean(axis=0))).sum() / (centred ** 2).sum())
        translation = target.mean(axis=0) - scale * mean
        if previous is not None and np.array_equal(previous, assigned):
            break
        previous = assigned
    distances = np.linalg.norm(scale * positions + translation - reference[assigned], axis=1)
    return ChannelNames([names[i] for i in assigned], distances, scale, translation, iterations, montage, used,
                        len(reference))


# ------------------------------------------------------------------------------------------------ download
def download(root: str | Path, revision: str = REVISION) -> Path:
    """Download ``assets/example_data.pt`` of OpenTSLab/BrainOmni at ``revision`` into ``root`` (needs internet;
    MIT licence) and return ``root``. The file is checked with :func:`read_sample` before it replaces an older
    one."""
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=root, suffix=".part")
    os.close(handle)
    try:
        urllib.request.urlretrieve(URL.format(revision=revision), temporary)
        read_sample(temporary)
        os.replace(temporary, root / FILE_NAME)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return root


# ------------------------------------------------------------------------------------------------ DataModule
class BrainOmniSampleDataModule(RecordingDataModule):
    """Windows of BrainOmni's EEG sample, channels named from their positions (module docstring: findings, naming
    rule, unit, split).

    Args:
        root: folder holding ``example_data.pt`` (:func:`download` puts it there).
        file_name: the sample's file name in ``root``.
        window_seconds: window length [s], whole EEG patches (default 4: the whole sample, 800 samples at 200 Hz).
        sampling_rate: the file's rate [Hz] (BrainOmni's 256).
        eeg_sensor_types: ``sensor_type`` codes kept as EEG (default ``[2]``); other rows are dropped (listed in
            the summary's ``dropped_channels``).
        x_unit: ``"standardised"`` (BrainOmni's), ``"V"``, ``"mV"`` or ``"uV"``.
        standardised_uv: µV per unit of a standardised ``x``.
        candidates: 10-05 positions the rows may be named by: ``"vocabulary"`` (default) or ``"all"``.
        val_subjects / test_subjects: default (no ``split`` given): val empty, test ``["sample"]``.
        other arguments: see :class:`~neurorvq.data.datamodule.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, C, 800] uV at 200 Hz, "channel_ids": int64 [B, C], "subject": int64 [B]}``
    with C the EEG rows whose names are in the vocabulary (64 when all are).
    """

    dataset_name = "BrainOmni sample"
    root_layout = f"BrainOmni's {FILE_NAME} (assets/ of OpenTSLab/BrainOmni; see download())"

    def __init__(self, root: str, file_name: str = FILE_NAME, window_seconds: float = 4.0,
                 sampling_rate: float = SAMPLING_RATE, eeg_sensor_types: list[int] | None = None,
                 x_unit: str = "standardised", standardised_uv: float = 1.0, candidates: str = "vocabulary",
                 val_subjects: list[int | str] | None = None, test_subjects: list[int | str] | None = None,
                 **common: Any) -> None:
        if not file_name or Path(file_name).name != file_name:
            raise ConfigError(f"file_name is {file_name!r}; give the name of the sample file inside root (e.g. "
                              f"{FILE_NAME!r})")
        if not sampling_rate > 0:
            raise ConfigError(f"sampling_rate is {sampling_rate}; give the file's rate in Hz (BrainOmni's 256)")
        types = [EEG_SENSOR_TYPE] if eeg_sensor_types is None else [int(t) for t in eeg_sensor_types]
        if not types:
            raise ConfigError("eeg_sensor_types is empty; give the sensor_type codes to keep as EEG (e.g. [2])")
        if x_unit not in X_UNITS:
            raise ConfigError(f"x_unit is {x_unit!r}; use one of {list(X_UNITS)}")
        if not standardised_uv > 0:
            raise ConfigError(f"standardised_uv is {standardised_uv}; give the µV of one standardised unit (> 0)")
        if candidates not in CANDIDATES:
            raise ConfigError(f"candidates is {candidates!r}; use one of {list(CANDIDATES)}")
        if common.get("split") is None and val_subjects is None and test_subjects is None:
            val_subjects, test_subjects = [], [SUBJECT]  # an evaluation sample: --split test reads it
        super().__init__(root, window_seconds=window_seconds, val_subjects=val_subjects,
                         test_subjects=test_subjects, modality="eeg", **common)
        self.file_name = file_name
        self.sampling_rate = float(sampling_rate)
        self.eeg_sensor_types = tuple(types)
        self.x_unit = x_unit
        self.standardised_uv = float(standardised_uv)
        self.candidates = candidates

    def default_pipeline(self) -> Pipeline:
        """``Resample`` (256 -> 200 Hz) and ``PickChannels``: the minimal steps (module docstring)."""
        return Pipeline(self.spec, steps_from_config([{"step": "Resample"}, {"step": "PickChannels"}]))

    def find_recordings(self) -> list[RecordingInfo]:
        return [RecordingInfo(self.root / self.file_name, SUBJECT)]

    def volts_per_unit(self) -> float:
        """The factor from the file's ``x`` to volts."""
        factor = X_UNITS[self.x_unit]
        return self.standardised_uv * 1e-6 if factor is None else factor

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        import mne

        sample = read_sample(info.path)
        keep = np.isin(sample.sensor_type, self.eeg_sensor_types)
        if not keep.any():
            raise DataError(f"no row of '{info.path.name}' has an EEG sensor_type {list(self.eeg_sensor_types)} "
                            f"(codes found: {sorted(set(sample.sensor_type.tolist()))}); set "
                            "data.init_args.eeg_sensor_types")
        if keep.sum() < MIN_EEG_ROWS:
            raise DataError(f"'{info.path.name}' has {int(keep.sum())} EEG rows; naming them by position needs at "
                            f"least {MIN_EEG_ROWS}")
        rows = np.flatnonzero(keep)
        self._scratch.setdefault("dropped", {}).update(
            {f"row {k} (sensor_type {sample.sensor_type[k]})": f"not an EEG sensor type "
             f"{list(self.eeg_sensor_types)}" for k in np.flatnonzero(~keep)})
        named = name_channels(sample.positions[rows], self.spec, self.candidates)
        orientation = float(np.abs(sample.orientations[rows]).max()) if sample.orientations.size else 0.0
        if orientation > 0:
            warnings.warn(f"{info.path}: rows kept as EEG (sensor_type {list(self.eeg_sensor_types)}) have non-zero "
                          f"orientations (largest |value| {orientation:.3g}); BrainOmni writes zeros for EEG and "
                          "orientations for MEG coils, so these may be MEG sensors (check eeg_sensor_types)",
                          BrainOmniOrientationWarning, stacklevel=2)
        self.note("channel_names", info.path.name, [
            {"row": int(row), "name": name, "distance_mm": round(float(d) * 1e3, 3)}
            for row, name, d in zip(rows, named.names, named.distances)])
        self.note("position_fit", info.path.name, named.fit_summary())
        x = sample.x[rows]
        self.note("signal", info.path.name, {
            "x_unit": self.x_unit, "volts_per_unit": self.volts_per_unit(), "sampling_rate": self.sampling_rate,
            "eeg_rows": int(rows.size), "other_rows": int((~keep).sum()), "x_std": float(np.std(x)),
            "x_max_abs": float(np.abs(x).max()), "eeg_orientation_max_abs": orientation})
        raw = mne.io.RawArray(x * self.volts_per_unit(), mne.create_info(named.names, self.sampling_rate, "eeg"),
                              verbose="error")
        recording = self.preprocess(raw, info, pipeline)
        return [self.cut(recording, info)]

    def channel_assignment(self) -> list[dict[str, Any]]:
        """After :meth:`setup`: ``[{"row", "name", "distance_mm"}]`` per EEG row of the sample (the summary's
        ``notes["channel_names"]``)."""
        return self.summary.get("notes", {}).get("channel_names", {}).get(self.file_name, [])


__all__ = ["BrainOmniOrientationWarning", "BrainOmniSample", "BrainOmniSampleDataModule", "CANDIDATES",
           "ChannelNames", "EEG_SENSOR_TYPE", "FILE_NAME", "REVISION", "SAMPLING_RATE", "SUBJECT", "URL", "X_UNITS",
           "download", "fit_sphere", "montage_positions", "name_channels", "read_sample"]
