"""MIT-BIH Arrhythmia Database (PhysioNet ``mitdb``) heartbeat classification as a LightningDataModule
(``neurorvq.datamodules.mitbih``).

48 half-hour two-lead records (``100`` ... ``234``) at 360 Hz, each a WFDB record ``NNN.hea`` / ``NNN.dat``
(format 212) with the reference beat annotations ``NNN.atr``. The leads are ``MLII`` (a modified limb lead II,
mapped to the vocabulary's ``ii``) and one of ``V1``, ``V2``, ``V4``, ``V5`` (-> ``v1``, ``v2``, ``v4``, ``v5``);
record 114 stores them in the other order, records 102 and 104 have ``V5`` + ``V2`` (no MLII). Records with
different lead pairs form different channel-set buckets; ``leads=['ii']`` keeps MLII only.

Beats: one window of ``window_seconds`` (default 1.2 s = 240 samples at 200 Hz = 6 ECG patches of 40) centred on
each annotated beat (the annotation sample is the R peak, converted to the 200-Hz grid; the window starts
``T // 2`` samples before it). Beats too close to the start or end of the record for a full window are rejected
(``outside recording`` in the summary). Labels: the AAMI EC57 classes used by de Chazal et al. (2004):

=====  =====  =========================================================================
label  class  annotation symbols
=====  =====  =========================================================================
0      N      ``N`` normal, ``L`` / ``R`` left / right bundle branch block, ``e`` atrial escape,
              ``j`` nodal (junctional) escape
1      S      ``A`` atrial premature, ``a`` aberrated atrial premature, ``J`` nodal premature,
              ``S`` supraventricular premature
2      V      ``V`` premature ventricular contraction, ``E`` ventricular escape
3      F      ``F`` fusion of ventricular and normal
4      Q      ``/`` paced, ``f`` fusion of paced and normal, ``Q`` unclassifiable
=====  =====  =========================================================================

Every other annotation is not a beat window: rhythm changes ``+``, noise ``~``, isolated QRS-like artefacts
``|``, comments ``"``, flutter waves ``!``, non-conducted P waves ``x``, ... They are skipped and counted per
record in :attr:`MITBIHDataModule.annotation_counts`.

Split (``split='inter_patient'``, default): de Chazal's inter-patient division, train = DS1 (22 records), test =
DS2 (22 records); the paced records 102, 104, 107 and 217 are excluded (``include_paced=True`` adds them to
train). Validation is empty unless ``val_subjects`` (record numbers from DS1) or ``val_fraction`` (records drawn
from DS1 by ``seed``) is given. ``split='subjects'`` splits the records like any recording dataset
(``val_fraction`` / ``test_fraction`` / ``val_subjects`` / ``test_subjects``). The subject of a record (the unit of
every split) is the record: subject name ``'100'``, id 100 (the database has one record per patient, except
201/202, which are the same subject; de Chazal keeps them in DS1/DS2).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurorvq.data.preprocess import DataError, Pipeline
from neurorvq.data.split_rules import SplitRule
from neurorvq.data.windows import RecordingInfo, WindowSet
from neurorvq.datamodules.wfdb_folder import WFDBRecordingDataModule, quiet_wfdb, record_base
from neurorvq.errors import ConfigError

AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
"""Class names in label order."""

BEAT_CLASSES: dict[str, str] = {
    "N": "N", "L": "N", "R": "N", "e": "N", "j": "N",
    "A": "S", "a": "S", "J": "S", "S": "S",
    "V": "V", "E": "V",
    "F": "F",
    "/": "Q", "f": "Q", "Q": "Q",
}
"""MIT-BIH beat annotation symbol -> AAMI class."""

DS1: tuple[int, ...] = (101, 106, 108, 109, 112, 114, 115, 116, 118, 119, 122, 124, 201, 203, 205, 207, 208, 209, 215,
                        220, 223, 230)
"""de Chazal et al. (2004) training records."""
DS2: tuple[int, ...] = (100, 103, 105, 111, 113, 117, 121, 123, 200, 202, 210, 212, 213, 214, 219, 221, 222, 228, 231,
                        232, 233, 234)
"""de Chazal et al. (2004) test records."""
PACED: tuple[int, ...] = (102, 104, 107, 217)
"""Records with paced beats, excluded from DS1/DS2."""
RECORDS: tuple[int, ...] = tuple(sorted(DS1 + DS2 + PACED))
"""All 48 records."""

SPLITS = ("inter_patient", "subjects")
_RECORD = re.compile(r"^(\d{3})\.hea$", re.IGNORECASE)


def beat_labels(symbols: Sequence[str], samples: Sequence[int]) -> tuple[np.ndarray, np.ndarray, Counter]:
    """Beats of an annotation list: ``(samples int64 [B], labels int64 [B] in AAMI_CLASSES order, skipped)``.

    ``skipped`` counts the other annotations by symbol (``{'+': 1}`` for record 100).
    """
    peaks, labels, skipped = [], [], Counter()
    for symbol, sample in zip(symbols, samples):
        cls = BEAT_CLASSES.get(str(symbol))
        if cls is None:
            skipped[str(symbol)] += 1
            continue
        peaks.append(int(sample))
        labels.append(AAMI_CLASSES.index(cls))
    return np.asarray(peaks, dtype=np.int64), np.asarray(labels, dtype=np.int64), skipped


def download(root: str | Path, records: Sequence[int] | None = None) -> Path:
    """Download MIT-BIH records (default all 48: ``.hea``, ``.dat``, ``.atr``) from PhysioNet into ``root`` with
    ``wfdb.dl_database`` (needs internet) and return ``root``."""
    import wfdb

    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    names = "all" if records is None else [str(int(r)) for r in records]
    wfdb.dl_database("mitdb", str(root), records=names, annotators=["atr"])
    return root


class MITBIHDataModule(WFDBRecordingDataModule):
    """Heartbeat windows of MIT-BIH with AAMI labels (see the module docstring).

    Args:
        root: folder holding ``100.hea``, ``100.dat``, ``100.atr``, ... (searched recursively).
        records: record numbers to load (e.g. ``[100, 101]``); ``None`` = every record found (the paced ones
            only with ``include_paced``). A listed record that is missing is reported as skipped.
        include_paced: also load records 102, 104, 107, 217 (into train under ``'inter_patient'``).
        split: ``'inter_patient'`` (DS1 train / DS2 test, default), ``'subjects'`` (random record split), or any
            split of the base class (a split file, a rule).
        leads: vocabulary leads to keep (``['ii']`` = MLII only); ``None`` = both leads of each record.
        window_seconds: beat window length [s], a multiple of the 0.2-s patch (default 1.2 s -> 240 samples).
        annotator: annotation file extension (default ``'atr'``, the reference annotations).
        val_subjects / test_subjects: record numbers (``test_subjects`` only with ``split='subjects'``).
        val_fraction / test_fraction: fractions of records for val / test when no list is given
            (``test_fraction`` only with ``split='subjects'``).
        other arguments: see :class:`~neurorvq.data.windows.RecordingDataModule`.

    Batches: ``{"signal": float32 [B, C, 240] mV at 200 Hz (C = 2, or 1 with one lead), "channel_ids": int64 [B, C],
    "label": int64 [B] (0..4 = N, S, V, F, Q), "subject": int64 [B] (record number)}``.
    """

    dataset_name = "MIT-BIH Arrhythmia"
    root_layout = "the MIT-BIH records 100.hea/100.dat/100.atr ... 234.hea/234.dat/234.atr"
    label_names = AAMI_CLASSES

    def __init__(self, root: str, records: list[int] | None = None, include_paced: bool = False,
                 split: str | SplitRule = "inter_patient", leads: list[str] | None = None, window_seconds: float = 1.2,
                 annotator: str = "atr", batch_size: int = 256, val_subjects: list[int | str] | None = None,
                 test_subjects: list[int | str] | None = None, val_fraction: float = 0.0, test_fraction: float = 0.2,
                 **common: Any) -> None:
        if split == "inter_patient" and test_subjects is not None:
            raise ConfigError("test_subjects is given with split='inter_patient', whose test records are DS2; use "
                              "split='subjects' to choose the test records")
        if leads is not None and not leads:
            raise ConfigError("leads is empty; give vocabulary leads such as ['ii'], or null for every lead")
        if not str(annotator).strip() or not str(annotator).isalnum():
            raise ConfigError(f"annotator is {annotator!r}; give an annotation file extension such as 'atr'")
        super().__init__(root, window_seconds=window_seconds, stride_seconds=None, batch_size=batch_size,
                         val_subjects=val_subjects, test_subjects=test_subjects, val_fraction=val_fraction,
                         test_fraction=0.0 if split == "inter_patient" else test_fraction,
                         split=None if split in SPLITS else split, modality="ecg", **common)
        if leads is not None:
            unknown = sorted({str(x).lower() for x in leads} - set(self.spec.channels))
            if unknown:
                raise ConfigError(f"leads {unknown} are not ECG vocabulary names {list(self.spec.channels)}")
        self.records = None if records is None else sorted({int(r) for r in records})
        self.include_paced = bool(include_paced)
        self.split = split if split in SPLITS else "rule"
        self.leads = None if leads is None else [str(x).lower() for x in leads]
        self.annotator = str(annotator)

    @property
    def annotation_counts(self) -> dict[str, Counter]:
        """Per record name: beats found per AAMI class and the skipped annotations per symbol (after loading; also
        in the summary's ``notes``, kept with a window cache)."""
        return {name: Counter(counts) for name, counts in self.summary.get("notes", {}).get("annotations", {}).items()}

    def default_split(self) -> SplitRule | None:
        """``'inter_patient'``: test = the DS2 records found (val = ``val_subjects``, else drawn from DS1 by
        ``val_fraction``); ``'subjects'``: the subject split of the base class."""
        if self.split != "inter_patient":
            return None
        test = [str(r) for r in DS2 if str(r) in self.subject_names]
        bad = [v for v in (self.val_subjects or []) if str(v) in test]
        if bad:
            raise ConfigError(f"val_subjects {bad} are DS2 (test) records under split='inter_patient'")
        return SplitRule(by="subject", val=None if self.val_subjects is None else list(self.val_subjects), test=test)

    def find_recordings(self) -> list[RecordingInfo]:
        found = {}
        for path in sorted(self.root.rglob("*.hea")):
            m = _RECORD.match(path.name)
            if m and path.is_file():
                found.setdefault(int(m.group(1)), path)
        if self.records is not None:
            numbers = self.records
        else:
            numbers = [r for r in sorted(found) if self.include_paced or r not in PACED]
        return [RecordingInfo(found.get(r, self.root / f"{r}.hea"), str(r), r, {}) for r in numbers]

    def load_windows(self, info: RecordingInfo, pipeline: Pipeline) -> list[WindowSet]:
        import wfdb

        base = record_base(info.path)
        annotation = base.with_name(f"{base.name}.{self.annotator}")
        if not annotation.is_file():
            raise DataError(f"missing beat annotations: {annotation} not found (the '{self.annotator}' annotation "
                            f"file of record {base.name})")
        try:
            with quiet_wfdb():
                ann = wfdb.rdann(str(base), self.annotator)
        except Exception as exc:
            raise DataError(f"unreadable annotations {annotation} ({type(exc).__name__}: {exc})") from exc
        peaks, labels, skipped = beat_labels(ann.symbol, ann.sample)
        if not len(peaks):
            raise DataError(f"no beat annotation in {annotation} (found only {dict(skipped)})")
        recording, fs = self.read_recording(info, pipeline, leads=self.leads)
        ratio = recording.sfreq / float(ann.fs or fs)
        starts = np.round(peaks * ratio).astype(np.int64) - self.window_samples // 2
        counts = Counter({AAMI_CLASSES[k]: int(n) for k, n in zip(*np.unique(labels, return_counts=True))})
        counts.update({f"skipped '{symbol}'": n for symbol, n in skipped.items()})
        self.note("annotations", base.name, dict(counts))
        return [self.cut(recording, info, starts=starts, labels=labels)]


__all__ = ["AAMI_CLASSES", "BEAT_CLASSES", "DS1", "DS2", "MITBIHDataModule", "PACED", "RECORDS", "beat_labels",
           "download"]
