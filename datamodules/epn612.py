"""EMG-EPN-612 (Escuela Politécnica Nacional; Myo armband, 8 channels, 200 Hz) as a LightningDataModule
(``neurorvq.datamodules.epn612``).

612 users, each a JSON file in the layout of the Zenodo record 4421500 (``EMG-EPN612 Dataset.zip``)::

    root/trainingJSON/user1/user1.json ... user306/user306.json   (the 306 "training" users)
    root/testingJSON/user1/user1.json ...                          (the 306 "testing" users)

(the folder holding ``trainingJSON/`` is the ``root``; the zip's own top folder above it is found too). One JSON
file holds ``generalInfo`` (``samplingFrequencyInHertz``: 200, ``deviceModel``, ...), ``userInfo``,
``synchronizationGesture`` and the two blocks ``trainingSamples`` and ``testingSamples``: objects
``{"idx_1": sample, "idx_2": sample, ...}`` of 150 samples each (25 per gesture). A sample holds
``emg: {"ch1": [...], ..., "ch8": [...]}`` (one ~5-s recording, ~1000 values per channel: Myo int8 device units,
-128..127), ``gestureName`` and, for the five gestures, the ground truth of the movement: ``groundTruth`` (0/1
per EMG sample) and ``groundTruthIndex`` ``[first, last]`` (1-based, inclusive; MATLAB's counting). The testing
users' ``testingSamples`` carry **no** ``gestureName`` (their labels stay with the dataset's evaluation); every
other block is labelled. Layout and keys checked against public readers of the dataset (TinyMyo's
``scripts/epn.py``, libemg's ``emg_epn612.py``, EDA scripts printing ``generalInfo``); sample lengths there:
~992 values typical, up to ~1120; ground-truth gestures 76-599 samples (0.4-3 s).

* **Labels** (six classes, TinyMyo's order): noGesture 0, waveIn 1, waveOut 2, pinch 3, open 4, fist 5
  (:data:`LABEL_NAMES`; libemg numbers them differently: noGesture 0, fist 1, waveIn 2, waveOut 3, open 4, pinch 5).
  A sample of a requested block without ``gestureName`` (e.g. a testing user's ``testingSamples`` listed in
  ``testing_blocks``), or with a name outside the six, is a :class:`DataError` naming the file and the sample: the
  file is skipped with a warning (``strict=True`` raises).
* **Subjects** are users: ``training-user<K>`` (id ``K``) and ``testing-user<K>`` (id ``1000 + K``, so the two
  folders' numbering can never collide). Recording columns ``user_set`` (``training`` / ``testing``) and ``user``
  (``K``); per-window columns ``block`` (``trainingSamples`` / ``testingSamples``) and ``sample`` (the ``K`` of
  ``idx_K``), so a split may route windows by block (:attr:`~EPN612DataModule.window_columns`).
* **Split** [I] (benchmarks.md §5.2: the published split is by user set; NeuroRVQ reports "subject-independent"
  without its protocol): by default train = the training users (both blocks, ``training_blocks``) except
  ``val_fraction`` of them drawn by ``seed`` as validation, test = the testing users' labelled ``trainingSamples``
  (``testing_blocks``). ``val_subjects`` / ``test_subjects`` or ``split`` replace it; the published split without a
  validation part is the shipped file ``neurorvq/splits/epn612.json`` (``split: <that path>``, by ``user_set``).
  TinyMyo's split (testing users' first 10 samples per gesture in train) is not subject-independent and not
  offered.
* **Windows** [I] (how NeuroRVQ cut them is unknown): every sample is its own short recording, preprocessed
  alone (filters never run across two samples). ``align='gesture'`` (default): one ``window_seconds`` window per
  sample, centred on the ground-truth movement (the middle of ``groundTruthIndex``, else of the 1s of
  ``groundTruth``; the sample's middle for noGesture), shifted inside the sample where it would overhang; the
  default 2.0 s (400 samples, 8 ``semg200`` patches) holds most ground-truth movements whole (0.4-3 s).
  ``align='sliding'``: windows every ``stride_seconds`` over the whole sample, each with the sample's label. A
  sample shorter than one window gives none (counted in the summary).
* **Channels** ``c1..c8`` (``ch<k>`` is ``c<k>``), the ``semg200`` vocabulary; **unit** ``au``: the int8 values
  times ``scale`` (default 1: device units as stored).

Sampling rate (the EMG tokenizer decision, benchmarks.md §5): the default modality is ``semg200``, the Myo's own
200 Hz, with the short-segment IIR filters of :mod:`neurorvq.datamodules.semg_armband` (notch 50/60 Hz, band-pass
20-95 Hz, zero phase; no resampling). The official EMG foundation model is the ``emg`` modality (1000 Hz, µV):
these data reach it only by a 5x upsampling the steps must ask for, ``{step: Resample, allow_upsample: true}``;
without it the DataModule refuses at construction with the Resample step's own message naming both rates and that
option (:func:`check_myo_rate`). In a µV modality the numbers (values x ``scale``) are taken as µV: the Myo has no
published µV calibration [I].

Download: :func:`download` fetches ``EMG-EPN612 Dataset.zip`` from Zenodo (record 4421500; several GB) and unpacks
it. Citation: Benalcázar M. et al., EMG-EPN-612 dataset, Zenodo, doi:10.5281/zenodo.4421500. Licence: see the
Zenodo record (not verified here).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.data.preprocess import DataError, Pipeline, Resample
from neurorvq.data.split_rules import SplitRule
from neurorvq.data.splits import split_subjects
from neurorvq.data.windows import RecordingDataModule, RecordingInfo, WindowSet
from neurorvq.datamodules.semg_armband import segment_pipeline_steps, steps_with_iir
from neurorvq.errors import ConfigError
from neurorvq.registry import ModalitySpec

SAMPLING_RATE = 200.0
"""Hz (Myo armband; ``generalInfo.samplingFrequencyInHertz``)."""
N_CHANNELS = 8
CHANNELS: tuple[str, ...] = tuple(f"c{k}" for k in range(1, N_CHANNELS + 1))
"""Vocabulary name of ``emg.ch<k>``."""
LABEL_NAMES: tuple[str, ...] = ("noGesture", "waveIn", "waveOut", "pinch", "open", "fist")
"""``gestureName`` of each label (TinyMyo's order)."""
USER_SETS = {"training": "trainingJSON", "testing": "testingJSON"}
"""User set -> its folder under the root."""
BLOCKS = ("trainingSamples", "testingSamples")
TESTING_ID_OFFSET = 1000
"""Subject id of testing user K: ``1000 + K`` (training user K: ``K``)."""
ZENODO_URL = "https://zenodo.org/records/4421500/files/EMG-EPN612%20Dataset.zip?download=1"
ALIGNS = ("gesture", "sliding")

_USER_DIR = re.compile(r"^user(\d+)$", re.IGNORECASE)
_SAMPLE_KEY = re.compile(r"^idx_(\d+)$")


# ------------------------------------------------------------------------------------------------ sampling rate
def check_myo_rate(pipeline: Pipeline, dataset: str, rate: float = SAMPLING_RATE) -> None:
    """Refuse, at construction, steps that cannot bring ``rate``-Hz recordings to the modality's rate: a
    :class:`DataError` naming both rates and the option ``{step: Resample, allow_upsample: true}`` (the
    :class:`~neurorvq.data.preprocess.Resample` step's own message when it would refuse to upsample)."""
    import mne

    spec = pipeline.spec
    if spec.sampling_rate == rate:
        return
    resample = next((s for s in pipeline.steps if isinstance(s, Resample)), None)
    if resample is None:
        up = spec.sampling_rate > rate
        raise DataError(f"{dataset} is at {rate:g} Hz but modality '{spec.name}' runs at {spec.sampling_rate:g} Hz "
                        "and the steps hold no Resample: add "
                        + ("{step: Resample, allow_upsample: true} to the steps to upsample on purpose"
                           if up else "{step: Resample} to the steps")
                        + (", or use modality 'semg200'" if rate == SAMPLING_RATE else ""))
    probe = mne.io.RawArray(np.zeros((1, 64)), mne.create_info(["c1"], rate, "emg"), verbose="error")
    try:
        resample.apply(probe, spec, {})
    except DataError as exc:
        raise DataError(f"{dataset} at {rate:g} Hz with modality '{spec.name}': {exc}") from None


def raw_scale(spec: ModalitySpec, scale: float) -> float:
    """Factor from stored values to what a ``RawArray`` must hold so that the pipeline's SI-to-``spec.unit``
    conversion leaves ``values x scale`` (device units stay device units, or are read as µV in a µV modality)."""
    from neurorvq.data.preprocess import unit_factor

    return float(scale) / unit_factor(spec.unit)


# ------------------------------------------------------------------------------------------------ files
def read_user_file(path: str | Path) -> dict:
    """The JSON object of one user file; :class:`DataError` naming the file (and line) when it does not parse."""
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); a truncated "
                        "download? unpack the Zenodo zip again") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 JSON ({exc.reason} at byte {exc.start})") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a JSON object with trainingSamples/testingSamples, got "
                        f"{type(content).__name__}")
    rate = (content.get("generalInfo") or {}).get("samplingFrequencyInHertz")
    if rate is not None and float(rate) != SAMPLING_RATE:
        raise DataError(f"{path}: generalInfo.samplingFrequencyInHertz is {rate}; EMG-EPN-612 is "
                        f"{SAMPLING_RATE:g} Hz")
    return content


def block_samples(content: dict, block: str, path: str | Path) -> list[tuple[int, dict]]:
    """``(K, sample)`` of every ``idx_K`` entry of ``block``, in order of ``K``."""
    entries = content.get(block)
    if not isinstance(entries, dict):
        what = "missing" if entries is None else f"a {type(entries).__name__}, not an object of samples"
        raise DataError(f"{path}: block '{block}' is {what} (a user file holds trainingSamples and testingSamples)")
    out = []
    for key, sample in entries.items():
        m = _SAMPLE_KEY.match(str(key))
        if m is None or not isinstance(sample, dict):
            raise DataError(f"{path}: {block}.{key} is not a sample 'idx_<k>' holding an object")
        out.append((int(m.group(1)), sample))
    return sorted(out, key=lambda item: item[0])


def sample_emg(sample: dict, where: str) -> np.ndarray:
    """``float64 [8, n]`` device units of ``sample['emg']`` (``ch1`` .. ``ch8``)."""
    emg = sample.get("emg")
    if not isinstance(emg, dict):
        raise DataError(f"{where}: no 'emg' object with ch1..ch8")
    missing = [f"ch{k}" for k in range(1, N_CHANNELS + 1) if f"ch{k}" not in emg]
    if missing:
        raise DataError(f"{where}: emg lacks channel(s) {missing} (the Myo armband has ch1..ch8)")
    try:
        rows = [np.asarray(emg[f"ch{k}"], dtype=np.float64) for k in range(1, N_CHANNELS + 1)]
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: emg holds non-numeric values ({exc})") from None
    lengths = {r.shape for r in rows}
    if len(lengths) != 1 or rows[0].ndim != 1 or not rows[0].size:
        raise DataError(f"{where}: emg channels have lengths {[r.size for r in rows]}; expected 8 equal, non-empty "
                        "lists")
    return np.stack(rows)


def sample_label(sample: dict, where: str, testing_user: bool) -> int:
    """Label of ``sample['gestureName']`` (:data:`LABEL_NAMES`); a :class:`DataError` naming ``where`` when absent
    or unknown."""
    name = sample.get("gestureName")
    if name is None:
        hint = (" (the testing users' testingSamples are unlabelled in the published dataset: leave "
                "'testingSamples' out of testing_blocks)") if testing_user else ""
        raise DataError(f"{where}: no gestureName, so no label{hint}")
    if name not in LABEL_NAMES:
        raise DataError(f"{where}: gestureName {name!r} is not one of {list(LABEL_NAMES)}")
    return LABEL_NAMES.index(name)


def gesture_centre(sample: dict, n: int, where: str) -> float:
    """Centre [samples, 0-based] of the ground-truth movement: ``groundTruthIndex`` (1-based, inclusive), else the
    1s of ``groundTruth``; the sample's middle when neither is given (noGesture)."""
    index = sample.get("groundTruthIndex")
    if index is not None:
        values = np.asarray(index, dtype=np.float64).reshape(-1)
        if values.size != 2 or not 1 <= values[0] <= values[1] <= n:
            raise DataError(f"{where}: groundTruthIndex {list(index)} is not [first, last] within the sample's "
                            f"{n} EMG values (1-based)")
        return (values[0] - 1 + values[1]) / 2.0
    truth = sample.get("groundTruth")
    if truth is not None:
        on = np.flatnonzero(np.asarray(truth, dtype=np.float64).reshape(-1) != 0)
        if on.size:
            return (on[0] + on[-1] + 1) / 2.0
    return n / 2.0


def download(root: str | Path) -> Path:
    """Download ``EMG-EPN612 Dataset.zip`` (Zenodo record 4421500; needs internet, several GB) into ``root``, unpack
    it and return the folder holding ``trainingJSON/`` and ``testingJSON/``, the ``root`` of
    :class:`EPN612DataModule`."""
    import urllib.request
    import zipfile

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "EMG-EPN612 Dataset.zip"
    if not archive.exists():
        partial = archive.with_suffix(".zip.part")
        urllib.request.urlretrieve(ZENODO_URL, partial)  # noqa: S310 - a fixed https URL
        partial.rename(archive)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(root)
    found = sorted(p.parent for p in root.rglob("trainingJSON") if p.is_dir())
    if not found:
        raise DataError(f"no trainingJSON folder in {archive} unpacked under {root}")
    return found[0]


# ------------------------------------------------------------------------------------------------ DataModule
class EPN612DataModule(RecordingDataModule):
    """Windows of the EMG-EPN-612 samples (see the module docstring for files, labels, split and windows).

    Args:
        root: the folder holding ``trainingJSON/`` and ``testingJSON/`` (or the folder the zip unpacked into).
        user_sets: which users to load, among ``training`` and ``testing`` (``None`` = both).
        training_blocks / testing_blocks: the blocks read from the training / testing users (``None`` = both
            blocks / ``["trainingSamples"]``, the labelled ones). Every sample of a listed block must carry
            ``gestureName``.
        align: ``'gesture'``: one window per sample centred on the ground-truth movement; ``'sliding'``:
            windows every ``stride_seconds`` over the whole sample.
        window_seconds: window length [s], whole patches of the modality (default 2.0).
        stride_seconds: step of the sliding windows [s] (``align='sliding'``; ``None`` = ``window_seconds``).
        scale: multiplier of the stored int8 values (default 1: device units).
        modality: ``semg200`` (default, 200 Hz); another rate needs a Resample step in ``steps`` that allows it.
        steps: preprocessing steps (the shared ones and ``IIRNotch`` / ``IIRBandPass``); ``None`` = the
            short-segment IIR notch and band-pass (plus ``Resample`` for another modality rate, which must allow
            upsampling: give the steps yourself).
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, 8, T] (au at 200 Hz, T = 400 by default), "channel_ids": int64 [B, 8],
    "label": int64 [B] (0..5, :data:`LABEL_NAMES`), "subject": int64 [B] (K or 1000 + K)}``.
    """

    dataset_name = "EMG-EPN-612"
    root_layout = "trainingJSON/user1/user1.json ... and testingJSON/user1/user1.json ... (the unpacked Zenodo zip)"
    label_names = LABEL_NAMES
    window_columns = ("block", "sample")

    def __init__(self, root: str, user_sets: list[str] | None = None, training_blocks: list[str] | None = None,
                 testing_blocks: list[str] | None = None, align: str = "gesture", window_seconds: float = 2.0,
                 stride_seconds: float | None = None, scale: float = 1.0, steps: list[dict] | None = None,
                 modality: str = "semg200", **common: Any) -> None:
        user_sets = list(USER_SETS) if user_sets is None else list(dict.fromkeys(user_sets))
        if not user_sets or any(s not in USER_SETS for s in user_sets):
            raise ConfigError(f"user_sets is {user_sets}; give a non-empty subset of {list(USER_SETS)}")
        blocks = {"training": list(BLOCKS) if training_blocks is None else list(dict.fromkeys(training_blocks)),
                  "testing": ["trainingSamples"] if testing_blocks is None else list(dict.fromkeys(testing_blocks))}
        for user_set, listed in blocks.items():
            if user_set in user_sets and (not listed or any(b not in BLOCKS for b in listed)):
                raise ConfigError(f"{user_set}_blocks is {listed}; give a non-empty subset of {list(BLOCKS)}")
        if align not in ALIGNS:
            raise ConfigError(f"align is {align!r}; use 'gesture' (one window per sample, centred on the movement) "
                              "or 'sliding' (windows every stride_seconds over the whole sample)")
        if not float(scale) > 0:
            raise ConfigError(f"scale is {scale}; give a positive multiplier of the stored values (1 = device units)")
        if steps is not None:
            steps_with_iir(steps)  # bad steps fail at configuration time
        super().__init__(root, window_seconds=window_seconds, stride_seconds=stride_seconds, steps=None,
                         modality=modality, **common)
        self.steps = steps  # the base knows only the shared step names (semg_armband's IIR steps are ours)
        self.user_sets = tuple(user_sets)
        self.blocks = blocks
        self.align = align
        self.scale = float(scale)
        if not any((self.root / folder).is_dir() for folder in USER_SETS.values()):
            inner = sorted(p.parent for p in self.root.glob("*/trainingJSON") if p.is_dir())
            if inner:
                self.root = inner[0]  # the folder the zip unpacked into was given
        check_myo_rate(self.make_pipeline(), self.dataset_name)

    # ----------------------------------------------------------------------------------------- pipeline
    def default_pipeline(self) -> Pipeline:
        """Short-segment IIR notch 50/60 Hz and band-pass 20-95 Hz (each sample is a ~5-s recording); a
        ``Resample`` after them for a modality at another rate (refused unless the steps allow upsampling)."""
        steps = segment_pipeline_steps()
        if self.spec.sampling_rate != SAMPLING_RATE:
            steps.append(Resample())
        return Pipeline(self.spec, steps)

    def make_pipeline(self) -> Pipeline:
        if self.steps is not None:
            return Pipeline(self.spec, steps_with_iir(self.steps))
        return self.default_pipeline()

    # ----------------------------------------------------------------------------------------- files
    def find_recordings(self) -> list[RecordingInfo]:
        infos = []
        for user_set in self.user_sets:
            folder = self.root / USER_SETS[user_set]
            if not folder.is_dir():
                self.find_skipped[str(folder)] = f"no {USER_SETS[user_set]} folder"
                continue
            for user_dir in sorted(folder.iterdir()):
                m = _USER_DIR.match(user_dir.name)
                if not (m and user_dir.is_dir()):
                    continue
                number = int(m.group(1))
                subject_id = number if user_set == "training" else TESTING_ID_OFFSET + number
                infos.append(RecordingInfo(user_dir / f"{user_dir.name}.json", f"{user_set}-user{number}", subject_id,
                                           {"user_set": user_set}, columns={"user_set": user_set, "user": number}))
        return infos

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        import mne

        user_set = info.metadata["user_set"]
        content = read_user_file(info.path)
        raw_info = mne.create_info(list(CHANNELS), SAMPLING_RATE, "emg")
        factor = raw_scale(self.spec, self.scale)
        ratio = self.spec.sampling_rate / SAMPLING_RATE
        source_window = self.window_samples / ratio
        samples = [(block, k, sample) for block in self.blocks[user_set]
                   for k, sample in block_samples(content, block, info.path)]
        parsed = []  # everything checked before any filtering: a bad label rejects the file at once
        for block, k, sample in samples:
            where = f"{info.path}: {block}.idx_{k}"
            label = sample_label(sample, where, testing_user=user_set == "testing")
            emg = sample_emg(sample, where)
            centre = gesture_centre(sample, emg.shape[1], where) if self.align == "gesture" else 0.0
            parsed.append((block, k, label, emg, centre))
        pieces: dict[tuple, list[WindowSet]] = {}
        for block, k, label, emg, centre in parsed:
            if emg.shape[1] < source_window:
                self.note_rejected(f"sample shorter than one {self.window_seconds:g}-s window")
                continue
            raw = mne.io.RawArray(emg * factor, raw_info, verbose="error")
            try:
                recording = self.preprocess(raw, info, pipeline)
            except DataError as exc:  # e.g. a flat channel in one sample: that sample only
                self.note_rejected(f"sample rejected ({str(exc).removeprefix(f'{info.path}: ')})")
                continue
            n = recording.data.shape[1]
            starts = self._starts(n, centre * ratio)
            ws = self.cut(recording, info, starts=starts, labels=[label] * len(starts),
                          columns={"block": block, "sample": k})
            if len(ws):
                pieces.setdefault(ws.key[:2], []).append(ws)
        return [_concatenate(sets) for sets in pieces.values()]

    def _starts(self, n: int, centre: float) -> np.ndarray:
        """Window starts [samples at the spec rate] in a sample of ``n`` samples."""
        window = self.window_samples
        if self.align == "gesture":
            return np.asarray([int(np.clip(round(centre - window / 2), 0, n - window))], dtype=np.int64)
        stride = window if self.stride_seconds is None else int(round(self.stride_seconds * self.spec.sampling_rate))
        return np.arange(0, n - window + 1, stride, dtype=np.int64)

    # ----------------------------------------------------------------------------------------- splits
    def default_split(self) -> SplitRule | None:
        """Train = the training users but ``val_fraction`` of them (drawn by ``seed``) for val; test = the
        testing users. ``None`` (the base's subject split) when ``val_subjects`` / ``test_subjects`` are given."""
        if self.val_subjects is not None or self.test_subjects is not None:
            return None
        training = [n for n in self.subject_names if n.startswith("training-")]
        testing = [n for n in self.subject_names if n.startswith("testing-")]
        parts = split_subjects(training, self.seed, self.val_fraction, 0.0) if training else {"train": [], "val": []}
        return SplitRule(by="subject", train=parts["train"], val=parts["val"], test=testing)

    def window_metadata(self, split: str) -> dict[str, np.ndarray]:
        """Per-window columns of ``split`` (after :meth:`setup`), aligned with ``datasets[split]``:
        ``user_set``, ``block`` (str [N]), ``user``, ``sample`` (int64 [N])."""
        table = self.window_table(split)
        return {key: table[key] for key in ("user_set", "user", "block", "sample") if key in table}


def _concatenate(sets: Sequence[WindowSet]) -> WindowSet:
    """One window set of ``sets`` (one recording, same channels and length), in order."""
    if len(sets) == 1:
        return sets[0]
    first = sets[0]
    return WindowSet(np.concatenate([s.signals for s in sets]), first.channel_ids,
                     labels=np.concatenate([s.labels for s in sets]), recording=first.recording,
                     starts=np.concatenate([s.starts for s in sets]), channels=list(first.channels),
                     columns={name: np.concatenate([s.columns[name] for s in sets]) for name in first.columns})


__all__ = ["BLOCKS", "CHANNELS", "EPN612DataModule", "LABEL_NAMES", "SAMPLING_RATE", "TESTING_ID_OFFSET",
           "USER_SETS", "ZENODO_URL", "block_samples", "check_myo_rate", "download", "gesture_centre",
           "raw_scale", "read_user_file", "sample_emg", "sample_label"]
