"""Channel names of real files mapped onto the vocabularies."""

from __future__ import annotations

import numpy as np
import pytest

from neurorvq import get_modality
from neurorvq.data.channels import clean_channel_name, describe_dropped, map_channels, no_channel_message
from neurorvq.data.preprocess import DataError, PickChannels
from neurorvq.errors import InputError

EEG = get_modality("eeg")
ECG = get_modality("ecg")


def test_clean_names():
    assert clean_channel_name("EEG Fp1-REF") == "fp1"
    assert clean_channel_name("Fc5.") == "fc5"
    assert clean_channel_name("Cz..") == "cz"
    assert clean_channel_name(" EEG T3-LE ") == "t3"
    assert clean_channel_name("EEG Fpz-Cz") == "fpz-cz"  # a bipolar derivation stays as it is


def test_bci2000_names_all_map(data_dir):
    import mne

    raw = mne.io.read_raw_edf(data_dir / "eegmmidb" / "S001" / "S001R01.edf", verbose="error")
    mapping = map_channels(raw.ch_names, EEG)
    assert len(mapping.names) == 64 and not mapping.dropped
    assert mapping.names[:3] == ["fc5", "fc3", "fc1"] and "iz" in mapping.names


def test_t3_and_t7_are_never_aliased():
    mapping = map_channels(["T3", "T7", "EEG T4-REF"], EEG)
    assert mapping.names == ["t3", "t7", "t4"]


def test_unknown_dropped_and_reported_never_mislabelled():
    mapping = map_channels(["Cz", "EKG", "Status", "EEG Fpz-Cz"], EEG)
    assert mapping.names == ["cz"]
    assert set(mapping.dropped) == {"EKG", "Status", "EEG Fpz-Cz"}
    assert "not in the 'eeg' vocabulary" in mapping.dropped["Status"]


def test_bipolar_only_through_explicit_choice():
    mapping = map_channels(["EEG Fpz-Cz", "EEG Pz-Oz"], EEG, explicit={"EEG Fpz-Cz": "fpz", "EEG Pz-Oz": "pz"})
    assert mapping.names == ["fpz", "pz"]


def test_ecg_aliases_only_for_missing_names(data_dir):
    import wfdb

    header = wfdb.rdheader(str(data_dir / "mitdb" / "100"))
    mapping = map_channels(header.sig_name, ECG)  # ['MLII', 'V5']
    assert mapping.names == ["ii", "v5"]
    ptb = wfdb.rdheader(str(data_dir / "ptbdb" / "patient001" / "s0010_re"))
    assert map_channels(ptb.sig_name, ECG).names == ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4",
                                                      "v5", "v6", "vx", "vy", "vz"]


def test_names_from_mat_or_hdf5_files():
    """Bytes, NUL-padded fixed-width strings and numpy string arrays map as their text."""
    as_str = map_channels(["EEG Fp1-REF", "Cz", "EKG"], EEG)
    for names in ([b"EEG Fp1-REF", b"Cz", b"EKG"], np.array([b"EEG Fp1-REF", b"Cz", b"EKG"], dtype="S16"),
                  np.array(["EEG Fp1-REF", "Cz", "EKG"])):
        mapping = map_channels(names, EEG)
        assert (mapping.picks, mapping.names, mapping.dropped) == (as_str.picks, as_str.names, as_str.dropped)
    assert list(as_str.dropped) == ["EKG"]


def test_recording_name_neither_text_nor_number_is_refused():
    with pytest.raises(InputError, match=r"recording channel names\[1\] is None"):
        map_channels(["Cz", None], EEG)


def test_duplicates_dropped():
    mapping = map_channels(["Cz", "CZ.", "EEG Cz-REF"], EEG)
    assert mapping.names == ["cz"] and len(mapping.dropped) == 2
    assert "duplicate" in mapping.dropped["CZ."]


def test_refusal_lists_a_few_dropped_channels_and_the_channel_map_option():
    """An anonymised export (EEG 000 ... EEG 031): a short message with examples, the count and what to set,
    instead of the dict of every dropped channel."""
    import mne

    names = [f"EEG {i:03d}" for i in range(32)]
    raw = mne.io.RawArray(np.zeros((32, 10)), mne.create_info(names, 200.0, "eeg"), verbose="error")
    with pytest.raises(DataError) as caught:
        PickChannels().apply(raw, EEG, {})
    message = str(caught.value)
    assert message.startswith("no channel maps onto the 'eeg' vocabulary: 32 channels dropped, e.g. 'EEG 000' "
                              "('000' is not in the 'eeg' vocabulary); 'EEG 001' (")
    assert "'EEG 004' ('004' is not in the 'eeg' vocabulary); and 27 more." in message and "EEG 005" not in message
    assert ('set channel_map in the data section of the recipe, e.g. `channel_map: {"EEG 000": fp1, "EEG 001": '
            'fp2}`') in message and "`EEG 000,fp1`" in message and "\n" not in message
    assert len(message) < 800
    with pytest.raises(DataError, match=r"and 27 more; the channel_map given names none of them \('X 1'\)"):
        PickChannels(explicit={"X 1": "fp1"}).apply(raw, EEG, {})
    assert describe_dropped({"EKG": "'ekg' is not in the 'ecg' vocabulary"}) == \
        "1 channel dropped, e.g. 'EKG' ('ekg' is not in the 'ecg' vocabulary)"
    assert '`channel_map: {"PLETH": i}`' in no_channel_message(ECG, {"PLETH": "not ecg"})
