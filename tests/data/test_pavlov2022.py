"""Pavlov 2022 digit span (OpenNeuro ds003838). The BIDS folders are written with mne_bids.write_raw_bids in the
published format (EEGLAB .set, samples inside; eeglabio is mne's EEGLAB writer) from RawArrays at 1000 Hz with
actiCHamp 10-10 names, then their events.tsv is laid out as the published one (columns onset, duration, sample,
trial_type, response_time, stim_file, value; a first STATUS/boundary row; one row per digit with the real
trial_type texts and value codes). sub-039 is exactly the published layout (no channels.tsv); sub-032 keeps the
channels.tsv mne-bids writes, typing an extra ECG channel, to check that non-EEG channels never enter the CAR."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import mne
import numpy as np
import pytest
import yaml

pytest.importorskip("mne_bids")
pytest.importorskip("eeglabio", reason="mne-bids writes the EEGLAB .set files of ds003838 with eeglabio")

from neurorvq.data.preprocess import DataError, Pipeline, steps_from_config  # noqa: E402
from neurorvq.data.split_files import read_split_file  # noqa: E402
from neurorvq.data.windows import RecordingSkippedWarning  # noqa: E402
from neurorvq.datamodules.pavlov2022 import (CLASS_NAMES, EEG_SUBJECTS, PAST_END, Pavlov2022DataModule,  # noqa: E402
                                             download, download_patterns, parse_digit, parse_trials)
from neurorvq.errors import ConfigError  # noqa: E402
from neurorvq.registry import get_modality  # noqa: E402
import neurorvq.splits  # noqa: E402

SFREQ = 1000.0
EEG = ["Fp1", "Fz", "F3", "C3", "Cz", "C4", "Pz", "O1", "FT9", "TP10"]  # FT9 is no vocabulary name
KEPT = [c.lower() for c in EEG if c != "FT9"]
SOA = 2.0  # s between digits
RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "benchmarks" / "memory_pavlov.yaml"
PUBLISHED_SIDECAR = {"TaskName": "mixed", "ManufacturersModelName": "Brain Products actiCHamp", "EEGReference": "FCz",
                     "EEGGround": "Fpz", "PowerLineFrequency": 50}  # as sub-032_task-memory_eeg.json has them
EVENT_COLUMNS = ["onset", "duration", "sample", "trial_type", "response_time", "stim_file", "value"]
# (condition, length, first-digit onset [s]) per subject: the sequences of a short recording; sub-032's last
# 13-digit sequence is cut short by the end of the recording (its window would end at 104 s)
SUBJECTS = {
    "032": {"seconds": 100.0, "ecg": True,
            "sequences": [("control", 5, 2.0), ("control", 13, 14.0), ("memory", 9, 41.0), ("memory", 13, 60.0),
                          ("memory", 13, 86.0)]},
    "039": {"seconds": 90.0, "ecg": False,
            "sequences": [("memory", 5, 2.0), ("memory", 13, 13.0), ("control", 9, 40.0), ("control", 13, 59.0)]},
}


# ------------------------------------------------------------------------------------------------ the layout
def digit_event(condition: str, position: int, length: int, recalled: bool = True) -> tuple[str, int]:
    """``(trial_type, value)`` of one digit as ds003838's events.tsv writes them."""
    which = "1 (first)" if position == 1 else f"{length} (last)" if position == length else str(position)
    if condition == "control":
        return (f"control {position:02d}/{length:02d}: listen to digit {which} in {length} digit sequence",
                int(f"5{position:03d}{length:02d}"))
    outcome = "correct" if recalled else "error"
    tail = "correctly recalled" if recalled else "forgotten"
    return (f"{condition} {position:02d}/{length:02d} {outcome}: memorize digit {which} in {length} digit sequence; "
            f"{tail}", int(f"6{position:03d}{length:02d}{int(recalled)}"))


CODES = dict(digit_event(c, p, n, r) for c in ("control", "memory") for n in (5, 9, 13) for p in range(1, n + 1)
             for r in (True, False))
"""Every digit's ``trial_type -> value`` (the levels of the published events.json)."""


def sequence_events(sequences, seconds: float) -> list[tuple[float, str, int]]:
    """``(onset, trial_type, value)`` of every digit inside the recording (a sequence running past the end is
    cut off, as when a recording stops mid-trial); memory digits after the 6th are 'forgotten'."""
    events = []
    for condition, length, onset in sequences:
        for k in range(length):
            if onset + k * SOA + 1.0 <= seconds:
                events.append((onset + k * SOA, *digit_event(condition, k + 1, length, recalled=k < 6)))
    return events


def make_raw(label: str, seed: int = 0) -> mne.io.RawArray:
    """One subject's recording (volts, as MNE holds it): 5-uV noise; FT9 carries a 100-uV 23-Hz sine all along (the
    CAR spreads -1/10 of it onto every EEG channel); C3 a 40-uV 10-Hz burst 14-18 s after every 13-digit cue (the
    window); an ECG channel (sub-032) a 1000-uV 7-Hz sine that must not reach the average."""
    spec = SUBJECTS[label]
    n = int(spec["seconds"] * SFREQ)
    t = np.arange(n) / SFREQ
    names = EEG + (["ECG"] if spec["ecg"] else [])
    data = np.random.default_rng(seed).normal(0, 5e-6, (len(names), n))
    data[EEG.index("FT9")] += 100e-6 * np.sin(2 * np.pi * 23 * t)
    for _, length, onset in spec["sequences"]:
        if length == 13:
            burst = (t >= onset + 14.0) & (t < onset + 18.0)
            data[EEG.index("C3"), burst] += 40e-6 * np.sin(2 * np.pi * 10 * t[burst])
    if spec["ecg"]:
        data[-1] += 1000e-6 * np.sin(2 * np.pi * 7 * t)
    info = mne.create_info(names, SFREQ, ["eeg"] * len(EEG) + (["ecg"] if spec["ecg"] else []))
    raw = mne.io.RawArray(data, info, verbose="error")
    events = sequence_events(spec["sequences"], spec["seconds"])
    raw.set_annotations(mne.Annotations([e[0] for e in events], [1.0] * len(events), [e[1] for e in events]))
    return raw


def write_subject(root: Path, label: str, raw: mne.io.BaseRaw, channels_tsv: bool) -> Path:
    """Write ``raw`` as ``sub-<label>/eeg/sub-<label>_task-memory_eeg.set`` (mne-bids, EEGLAB) and give its
    events.tsv the published columns and first STATUS row; returns the .set path."""
    import mne_bids

    codes = {d: v for d, v in CODES.items() if d in set(raw.annotations.description)}  # trial_type -> value
    bids_path = mne_bids.BIDSPath(subject=label, task="memory", datatype="eeg", root=root)
    mne_bids.write_raw_bids(raw, bids_path, event_id=codes, allow_preload=True, format="EEGLAB", overwrite=True,
                            verbose=False)
    folder = root / f"sub-{label}" / "eeg"
    events_file = folder / f"sub-{label}_task-memory_events.tsv"
    with open(events_file, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    with open(events_file, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(EVENT_COLUMNS)
        writer.writerow(["0.0000000000", "n/a", 0, "STATUS", "n/a", "n/a", "boundary"])
        for row in rows:
            writer.writerow([f"{float(row['onset']):.10f}", f"{float(row['duration']):.10f}", row["sample"],
                             row["trial_type"], "n/a", "n/a", row["value"]])
    sidecar = folder / f"sub-{label}_task-memory_eeg.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), **PUBLISHED_SIDECAR}, indent=2))
    if not channels_tsv:  # the published EEG folders have none
        (folder / f"sub-{label}_task-memory_channels.tsv").unlink()
    return folder / f"sub-{label}_task-memory_eeg.set"


def write_pavlov_layout(root: Path) -> Path:
    """A two-subject ds003838 folder (sub-032, sub-039; 100 and 90 s) for ``data.init_args.root``: two 13-digit
    trials each in the window (one control, one memory) and, in sub-032, a third cut short by the recording's end."""
    root = Path(root)
    for seed, label in enumerate(SUBJECTS):
        write_subject(root, label, make_raw(label, seed), channels_tsv=SUBJECTS[label]["ecg"])
    return root


def amplitude(x: np.ndarray, freq: float, sfreq: float = 200.0) -> np.ndarray:
    """Amplitude of the ``freq`` component along the last axis (whole cycles in a 4-s window)."""
    t = np.arange(x.shape[-1]) / sfreq
    return 2.0 / x.shape[-1] * np.abs((x * np.exp(-2j * np.pi * freq * t)).sum(axis=-1))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_pavlov_layout(tmp_path_factory.mktemp("ds003838"))


@pytest.fixture(scope="module")
def loaded(root) -> Pavlov2022DataModule:
    dm = Pavlov2022DataModule(str(root), val_fraction=0.0, test_fraction=0.0, verbose=False)
    dm.setup()
    return dm


# ------------------------------------------------------------------------------------------------ events
def test_digit_events_parse_as_published():
    assert parse_digit(digit_event("control", 1, 13)[0], "e.tsv") == (0, 1, 13)
    assert parse_digit("memory 13/13 error: memorize digit 13 (last) in 13 digit sequence; forgotten", "e.tsv") == (
        1, 13, 13)
    assert parse_digit("500105", "e.tsv") == (0, 1, 5) and parse_digit("6009090", "e.tsv") == (1, 9, 9)  # value codes
    assert parse_digit("STATUS", "e.tsv") is None and parse_digit("boundary", "e.tsv") is None
    with pytest.raises(DataError, match=r"e\.tsv: trial_type 'rehearse 01/13: .*' has condition 'rehearse', outside "
                                        r"the declared classes \['control', 'memory'\]"):
        parse_digit("rehearse 01/13: say digit 1 (first) in 13 digit sequence", "e.tsv")
    with pytest.raises(DataError, match=r"value '7001131' .*outside the declared classes"):
        parse_digit("7001131", "e.tsv")
    with pytest.raises(DataError, match="digit 1 of a 7-digit sequence"):
        parse_digit("control 01/07: listen to digit 1 (first) in 7 digit sequence", "e.tsv")
    events = [(0.0, "STATUS"), (3.0, "odd marker")] + [(o, d) for o, d, _ in sequence_events(
        SUBJECTS["032"]["sequences"], SUBJECTS["032"]["seconds"])]
    trials = parse_trials(events, "e.tsv")  # one trial per first digit, all lengths
    assert trials.onsets.tolist() == [2.0, 14.0, 41.0, 60.0, 86.0] and trials.lengths.tolist() == [5, 13, 9, 13, 13]
    assert trials.labels.tolist() == [0, 0, 1, 1, 1] and trials.numbers.tolist() == [1, 2, 3, 4, 5]
    assert trials.ignored == {"odd marker": 1}
    with pytest.raises(DataError, match="e.tsv: no digit events"):
        parse_trials([(0.0, "STATUS")], "e.tsv")


def test_the_layout_is_the_published_one(root):
    folder = root / "sub-039" / "eeg"
    assert sorted(p.name for p in folder.iterdir()) == [
        "sub-039_task-memory_eeg.json", "sub-039_task-memory_eeg.set", "sub-039_task-memory_events.json",
        "sub-039_task-memory_events.tsv"]
    lines = (folder / "sub-039_task-memory_events.tsv").read_text().splitlines()
    assert lines[0].split("\t") == EVENT_COLUMNS and lines[1].split("\t")[3] == "STATUS"
    assert lines[2].split("\t")[3:] == ["memory 01/05 correct: memorize digit 1 (first) in 5 digit sequence; "
                                        "correctly recalled", "n/a", "n/a", "6001051"]
    assert json.loads((folder / "sub-039_task-memory_eeg.json").read_text())["SamplingFrequency"] == SFREQ


# ------------------------------------------------------------------------------------------------ windows
def test_windows_labels_channels_units_and_ids(loaded):
    dm = loaded
    assert dm.subject_names == ["032", "039"] and dm.subject_ids == {"032": 32, "039": 39}
    assert dm.num_classes == 2 and dm.label_names == CLASS_NAMES == ("control", "memory")
    s = dm.summary
    assert s["recordings_loaded"] == 2 and s["skipped"] == {}
    assert s["rejected"] == {PAST_END: 1}  # sub-032's last trial: "trials shorter than the window"
    assert s["dropped_channels"] == {"FT9": s["dropped_channels"]["FT9"], "ECG": "not an EEG channel (type ecg)"}
    assert s["notes"]["sequences"]["sub-032_task-memory_eeg.set"] == {
        "control 5": 1, "control 9": 0, "control 13": 1, "memory 5": 0, "memory 9": 1, "memory 13": 2}
    spec = get_modality("eeg")
    by_subject = {int(ws.subjects[0]): ws for ws in dm.datasets["train"].sets}
    assert sorted(by_subject) == [32, 39]
    for subject, labels, cues, trials in ((32, [0, 1], [14.0, 60.0], [2, 4]), (39, [1, 0], [13.0, 59.0], [2, 4])):
        ws = by_subject[subject]
        assert ws.signals.shape == (2, len(KEPT), 800) and ws.signals.dtype == np.float32  # 4 s at 200 Hz
        assert ws.channels == KEPT and ws.channel_ids.tolist() == [spec.channel_index(c) for c in KEPT]
        assert ws.labels.tolist() == labels  # only the 13-digit sequences; memory 1, control 0
        assert ws.starts.tolist() == [int(round((c + 14.0) * 200)) for c in cues]  # 14-18 s after the first digit
        assert ws.columns["trial"].tolist() == trials
        # uV: C3's 40-uV burst fills the window, less its share of the average (1/10 of the 10 EEG channels)
        c3 = amplitude(ws.signals[:, KEPT.index("c3")], 10.0)
        assert np.all((c3 > 32) & (c3 < 40)), c3
        # CAR over all 10 EEG channels (FT9 included, dropped afterwards; the ECG left out): FT9's 100-uV 23-Hz
        # sine is -10 uV on every kept channel, the ECG's 1000-uV 7-Hz sine nowhere
        assert np.all(np.abs(amplitude(ws.signals, 23.0) - 10.0) < 1.0), amplitude(ws.signals, 23.0)
        assert np.all(amplitude(ws.signals, 7.0) < 1.0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["signal"].shape == (4, len(KEPT), 800) and set(batch) == {"signal", "channel_ids", "label", "subject"}


def test_the_shipped_benchmark_folds_match_the_subject_names_and_ids(tmp_path):
    """The DataModule's names and ids of all 65 EEG subjects (files listed, none read) match every subject of
    neurorvq/splits/pavlov.json; a fold holds its subjects out as test."""
    (tmp_path / "dataset_description.json").write_text(json.dumps({"Name": "ds003838", "BIDSVersion": "1.1.1"}))
    for label in EEG_SUBJECTS:
        folder = tmp_path / f"sub-{label}" / "eeg"
        folder.mkdir(parents=True)
        (folder / f"sub-{label}_task-memory_eeg.set").write_bytes(b"")
    split_path = neurorvq.splits.path("pavlov")
    dm = Pavlov2022DataModule(str(tmp_path), split={"file": str(split_path), "fold": "0"}, verbose=False)
    plan = dm.resolve_plan()
    assert len(dm.subject_names) == 65 and dm.subject_ids["032"] == 32 and dm.subject_ids["098"] == 98
    matched = read_split_file(split_path, by="subject").match_all(dm.subject_names, ids=dm.subject_ids)
    assert sorted(v for values in matched.values() for v in values) == dm.subject_names
    assert dm.splits["test"] == ["039", "040", "049", "057", "064", "071", "096"] and plan.by == "subject"
    assert len(dm.splits["train"]) + len(dm.splits["val"]) == 58


def test_subjects_option(root):
    dm = Pavlov2022DataModule(str(root), subjects=[39], val_fraction=0.0, test_fraction=0.0, verbose=False)
    dm.setup()
    assert dm.subject_names == ["039"] and len(dm.datasets["train"]) == 2
    assert Pavlov2022DataModule(str(root), subjects=["sub-032", "039"], verbose=False).subjects == ["032", "039"]
    dm = Pavlov2022DataModule(str(root), subjects=["039", "040"], val_fraction=0.0, test_fraction=0.0, verbose=False)
    with pytest.warns(RecordingSkippedWarning, match="sub-040_task-memory_eeg.set: file not found"):
        dm.setup()
    with pytest.raises(ConfigError, match="subject 'abc' is not a BIDS subject label"):
        Pavlov2022DataModule(str(root), subjects=["abc"])
    with pytest.raises(ConfigError, match=r"subjects is \[\]"):
        Pavlov2022DataModule(str(root), subjects=[])


# ------------------------------------------------------------------------------------------------ errors
def test_a_root_that_is_not_the_bids_dataset(root, tmp_path):
    (tmp_path / "notes.txt").write_text("not BIDS")
    with pytest.raises(DataError, match=r"is not the ds003838 BIDS dataset in its published layout: no "
                                        r"dataset_description\.json in it; expected .* e\.g\. .*sub-032/eeg/"
                                        r"sub-032_task-memory_eeg\.set"):
        Pavlov2022DataModule(str(tmp_path), verbose=False).setup()
    (tmp_path / "dataset_description.json").write_text("{}")
    with pytest.raises(DataError, match=r"no sub-\*/eeg/sub-\*_task-memory_eeg\{\.set,.*file; expected"):
        Pavlov2022DataModule(str(tmp_path), verbose=False).setup()
    with pytest.raises(DataError, match="does not exist: set data.init_args.root"):
        Pavlov2022DataModule(str(tmp_path / "nowhere"))


def test_labels_outside_the_declared_classes(tmp_path):
    raw = make_raw("039")
    write_subject(tmp_path, "039", raw, channels_tsv=False)
    events_file = tmp_path / "sub-039" / "eeg" / "sub-039_task-memory_events.tsv"
    events_file.write_text(events_file.read_text().replace("control 01/09: listen", "rehearse 01/09: repeat"))
    with pytest.raises(DataError, match=r"sub-039_task-memory_events\.tsv: trial_type 'rehearse 01/09: repeat .*' "
                                        r"has condition 'rehearse', outside the declared classes"):
        Pavlov2022DataModule(str(tmp_path), strict=True, verbose=False).setup()


def test_trials_shorter_than_the_window(tmp_path):
    """A recording that stops before any 13-digit trial's 14-18 s window ends is skipped, with the reason; a
    missing events.tsv too."""
    raw = make_raw("039").crop(0, 75.0, include_tmax=False)  # the trials at 13 s and 59 s: windows 27-31, 73-77 s
    write_subject(tmp_path, "039", raw, channels_tsv=False)
    dm = Pavlov2022DataModule(str(tmp_path), val_fraction=0.0, test_fraction=0.0, verbose=False)
    dm.setup()
    assert dm.summary["rejected"] == {PAST_END: 1} and len(dm.datasets["train"]) == 1
    write_subject(tmp_path, "039", make_raw("039").crop(0, 30.0, include_tmax=False), channels_tsv=False)
    with pytest.raises(DataError, match=r"every 13-digit trial's window runs past the end of the recording \(30 s\)"):
        Pavlov2022DataModule(str(tmp_path), strict=True, verbose=False).setup()
    (tmp_path / "sub-039" / "eeg" / "sub-039_task-memory_events.tsv").unlink()
    with pytest.raises(DataError, match=r"sub-039_task-memory_events\.tsv not found"):
        Pavlov2022DataModule(str(tmp_path), strict=True, verbose=False).setup()


def test_missing_packages_name_the_extra(root, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mne_bids", None)
    with pytest.raises(ConfigError, match=r"'mne_bids' package.*pip install \"neurorvq\[benchmarks\]\""):
        Pavlov2022DataModule(str(root))
    monkeypatch.setitem(sys.modules, "openneuro", None)
    with pytest.raises(ConfigError, match=r"downloading ds003838 needs the 'openneuro' package.*"
                                          r"pip install \"neurorvq\[benchmarks\]\""):
        download(tmp_path, subjects=[32])
    assert not any(tmp_path.iterdir())


def test_download_fetches_only_the_digit_span_eeg():
    """The include patterns, matched by openneuro-py's own matcher against one subject's published files."""
    glob = pytest.importorskip("openneuro._glob")
    files = ["dataset_description.json", "participants.tsv", "README", "CHANGES",
             "sub-032/beh/sub-032_task-memory_beh.tsv", "sub-032/ecg/sub-032_task-memory_ecg.set",
             "sub-032/ecg/sub-032_task-memory_ecg.json", "sub-032/eeg/sub-032_task-memory_eeg.json",
             "sub-032/eeg/sub-032_task-memory_eeg.set", "sub-032/eeg/sub-032_task-memory_events.tsv",
             "sub-032/eeg/sub-032_task-rest_eeg.set", "sub-032/eeg/sub-032_task-rest_events.tsv",
             "sub-032/pupil/sub-032_task-memory_pupil.tsv", "sub-033/eeg/sub-033_task-memory_eeg.set"]
    patterns = download_patterns(["032"])
    assert patterns == ["sub-032/eeg/sub-032_task-memory_*"]
    matched = set().union(*glob.glob_filter(files, patterns).values())
    assert matched == {"sub-032/eeg/sub-032_task-memory_eeg.json", "sub-032/eeg/sub-032_task-memory_eeg.set",
                       "sub-032/eeg/sub-032_task-memory_events.tsv"}
    assert len(download_patterns()) == 65 == len(EEG_SUBJECTS) and "sub-066/eeg/sub-066_task-memory_*" not in \
        download_patterns()
    with pytest.raises(ConfigError, match=r"subjects \['037'\] have no EEG in ds003838"):
        download_patterns([37])


# ------------------------------------------------------------------------------------------------ recipe
def test_the_recipe_steps_are_the_default_pipeline(root):
    init = yaml.safe_load(RECIPE.read_text())["data"]["init_args"]
    dm = Pavlov2022DataModule(str(root), verbose=False)
    assert Pipeline(dm.spec, steps_from_config(init["steps"])).config() == dm.default_pipeline().config()
    assert [s["step"] for s in dm.default_pipeline().config()["steps"]] == [
        "Resample", "BandPass", "CommonAverageReference", "PickChannels"]
    assert init["window_seconds"] == 4.0 and init["root"] == "data/benchmarks/pavlov2022"


def test_the_window_cache_holds_the_same_windows(root, tmp_path):
    from cache_checks import assert_cache_matches_memory

    memory = Pavlov2022DataModule(str(root), val_fraction=0.5, test_fraction=0.0, verbose=False)
    memory.setup()
    cached = Pavlov2022DataModule(str(root), val_fraction=0.5, test_fraction=0.0, verbose=False,
                                  cache_dir=str(tmp_path / "cache"))
    cached.prepare_data()
    cached.setup()
    assert_cache_matches_memory(memory, cached)
    assert sorted(memory.splits["train"] + memory.splits["val"]) == ["032", "039"]
