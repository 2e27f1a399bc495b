"""A user's channel map from a recipe dict or a CSV/TSV/JSON file, and each bad input's error."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurorvq import get_modality
from neurorvq.data.channel_map import (absent_channels, check_recording_channels, load_channel_map,
                                       with_channel_map)
from neurorvq.data.preprocess import BandPass, PickChannels, Pipeline, Resample
from neurorvq.errors import ConfigError

EEG = get_modality("eeg")
EXPECTED = {"EEG 000": "fp1", "EEG 001": "fp2", "EEG 002": "cz"}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dict_form_lower_cases_targets():
    assert load_channel_map({"EEG 000": "FP1", " EEG 001 ": "fp2", "EEG 002": "Cz"}, EEG) == EXPECTED
    assert load_channel_map(None, EEG) == {}
    assert load_channel_map({7: "cz"}, EEG) == {"7": "cz"}  # YAML reads a bare 7 as an int


@pytest.mark.parametrize("name, text", [
    ("map.csv", "old,new\n# exported from the lab's montage sheet\n\n\"EEG 000\",FP1  # left frontal\n"
                "EEG 001, fp2,\nEEG 002,cz\n"),
    ("map.tsv", "recording\telectrode\nEEG 000\tfp1\nEEG 001\tfp2\nEEG 002\tcz\n"),
    ("map.json", '{"EEG 000": "fp1", "EEG 001": "fp2",\n "EEG 002": "cz"}\n'),
    ("map.txt", "EEG 000\tfp1\nEEG 001\tfp2\nEEG 002\tcz\n"),  # no known extension: a tab in the first pair
    ("map", '{"EEG 000": "fp1", "EEG 001": "fp2", "EEG 002": "cz"}'),  # no extension, JSON content
])
def test_file_forms(tmp_path, name, text):
    assert load_channel_map(_write(tmp_path, name, text), EEG) == EXPECTED
    assert load_channel_map(str(tmp_path / name), EEG) == EXPECTED


def test_malformed_file_names_the_file_and_line(tmp_path):
    path = _write(tmp_path, "map.csv", "old,new\nEEG 000,fp1\n\nEEG 001 fp2\n")
    with pytest.raises(ConfigError, match=rf"channel_map file '{path}', line 4: expected two columns old,new .*"
                                          r"separated by a comma\), got 'EEG 001 fp2'"):
        load_channel_map(path, EEG)
    path = _write(tmp_path, "map3.csv", "EEG 000,fp1,extra\n")
    with pytest.raises(ConfigError, match=r"map3\.csv', line 1: expected two columns"):
        load_channel_map(path, EEG)
    path = _write(tmp_path, "bad.json", '{\n  "EEG 000": "fp1",\n  "EEG 001" "fp2"\n}')
    with pytest.raises(ConfigError, match=rf"channel_map file '{path}', line 3: not valid JSON"):
        load_channel_map(path, EEG)
    path = _write(tmp_path, "list.json", '[["EEG 000", "fp1"]]')
    with pytest.raises(ConfigError, match=r"list\.json' holds a JSON list; it must be one object"):
        load_channel_map(path, EEG)
    path = _write(tmp_path, "empty.csv", "old,new\n# nothing yet\n")
    with pytest.raises(ConfigError, match=r"empty\.csv' maps no channel"):
        load_channel_map(path, EEG)
    with pytest.raises(ConfigError, match=r"channel_map file '.*nowhere\.csv' does not exist \(relative paths start"):
        load_channel_map(tmp_path / "nowhere.csv", EEG)
    with pytest.raises(ConfigError, match=r"channel_map is a list \(\['EEG 000'\]\); give a mapping"):
        load_channel_map(["EEG 000"], EEG)
    with pytest.raises(ConfigError, match=r"channel_map entry 'EEG 000': the electrode of 'EEG 000' is None"):
        load_channel_map({"EEG 000": None}, EEG)


def test_a_channel_given_twice(tmp_path):
    path = _write(tmp_path, "map.csv", "EEG 000,fp1\nEEG 001,fp2\neeg 000,cz\n")
    with pytest.raises(ConfigError, match=r"line 3: 'eeg 000' is already mapped as 'EEG 000' \(names match "
                                          r"case-insensitively\) \(line 1\); give each recording channel once"):
        load_channel_map(path, EEG)
    path = _write(tmp_path, "map.json", '{"EEG 000": "fp1", "EEG 000": "cz"}')
    with pytest.raises(ConfigError, match=r"map\.json' gives \['EEG 000'\] more than once"):
        load_channel_map(path, EEG)


def test_two_channels_on_one_electrode_names_both(tmp_path):
    with pytest.raises(ConfigError, match=r"channel_map: 'EEG 000' and 'EEG 005' both map to 'fp1'; an electrode "
                                          "takes one channel"):
        load_channel_map({"EEG 000": "fp1", "EEG 001": "fp2", "EEG 005": "FP1"}, EEG)
    path = _write(tmp_path, "map.csv", "EEG 000,fp1\nEEG 001,fp2\nEEG 005,fp1\n")
    with pytest.raises(ConfigError, match=r"map\.csv': 'EEG 000' \(line 1\) and 'EEG 005' \(line 3\) both map "
                                          "to 'fp1'"):
        load_channel_map(path, EEG)


def test_target_outside_the_vocabulary_says_the_closest_names(tmp_path):
    with pytest.raises(ConfigError, match=r"channel_map: 1 electrode\(s\) not in the 'eeg' vocabulary: 'EEG 000' "
                                          r"-> 'fp11', closest: fp1, p1, f1\. Use vocabulary names"):
        load_channel_map({"EEG 000": "fp11", "EEG 001": "fp2"}, EEG)
    path = _write(tmp_path, "map.csv", "channel,target\nEEG 000,fp1\n")  # not a known header: read as a pair
    with pytest.raises(ConfigError, match=r"'channel' -> 'target' \(line 1\)"):
        load_channel_map(path, EEG)
    assert load_channel_map({"EEG 000": "fp11"}) == {"EEG 000": "fp11"}  # without a spec, targets are not checked
    with pytest.raises(ConfigError, match=r"not in the 'ecg' vocabulary: 'ECG 0' -> 'avrr', closest: avr"):
        load_channel_map({"ECG 0": "avrr"}, get_modality("ecg"))


def test_with_channel_map_sets_the_pick_step():
    pipeline = with_channel_map(Pipeline(EEG, [PickChannels(), Resample()]), EXPECTED)
    assert pipeline.steps[0].explicit == EXPECTED and isinstance(pipeline.steps[1], Resample)
    same = Pipeline(EEG, [PickChannels()])
    assert with_channel_map(same, {}) is same
    with pytest.raises(ConfigError, match=r"steps has none: add \{step: PickChannels\} as the first step"):
        with_channel_map(Pipeline(EEG, [BandPass(), Resample()]), EXPECTED)
    with pytest.raises(ConfigError, match=r"both channel_map and a PickChannels step's 'explicit'"):
        with_channel_map(Pipeline(EEG, [PickChannels(explicit={"X": "cz"})]), EXPECTED)


def test_recording_lacking_map_names():
    names = ["EEG 000", "EEG 001", "eeg 002", "Status"]
    assert absent_channels(EXPECTED, names) == [] and check_recording_channels(EXPECTED, names, "a.edf") == {}
    wide = {**EXPECTED, "EEG 040": "o1", "EEG 041": "o2"}
    assert absent_channels(wide, names) == ["EEG 040", "EEG 041"]
    with pytest.raises(ConfigError, match=r"^/data/a\.edf lacks 2 channel\(s\) named in channel_map: 'EEG 040', "
                                          r"'EEG 041' \(its 4 channels: 'EEG 000', 'EEG 001', 'eeg 002', 'Status'\)\. "
                                          r"Correct these names in channel_map, or, if the folder mixes montages, set "
                                          r"channel_map_partial: true"):
        check_recording_channels(wide, names, "/data/a.edf")
    noted = check_recording_channels(wide, names, "/data/a.edf", partial=True)
    assert set(noted) == {"EEG 040", "EEG 041"} and "absent from some recordings" in noted["EEG 040"]


def test_bytes_and_numpy_names_in_a_map_are_decoded():
    import numpy as np

    from neurorvq.data.channel_map import load_channel_map
    from neurorvq.registry import get_modality

    loaded = load_channel_map({b"EEG 000": b"FP1", np.str_("EEG 001"): np.bytes_(b"fp2\x00")}, get_modality("eeg"))
    assert loaded == {"EEG 000": "fp1", "EEG 001": "fp2"}
