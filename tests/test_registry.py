"""Modality registry: built-in specs, registration, validation, serialisation, spec files, channel ids, entry points."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from neurorvq.errors import ConfigError, InputError
from neurorvq.families.neurorvq import ARCHITECTURE_FIELDS, NeuroRVQConfig
from neurorvq.families.neurorvq_spec import as_neurorvq_spec
from neurorvq.registry import (
    ENTRY_POINT_GROUP,
    ModalitySpec,
    TemporalBranch,
    get_modality,
    is_spec_file,
    list_modalities,
    refresh_entry_points,
    register_modality,
    resolve_channel_ids,
    unregister_modality,
)

BRANCHES = (TemporalBranch(kernel_sizes=(31, 15), pools=(2, 4)), TemporalBranch(kernel_sizes=(7, 3), pools=(2, 4)))


PREPROCESSING = ({"step": "PickChannels"}, {"step": "Resample"})


def small_spec(**changes) -> ModalitySpec:
    """A valid 64 Hz spec with a NeuroRVQ default (64-sample patches -> 8 steps x 8 conv channels = 64) with
    ``changes`` applied: architecture fields to the NeuroRVQ config, the others to the signal."""
    signal = dict(name="regtest", sampling_rate=64.0, patch_length=64, channels=("a", "b", "c"),
                  bands=(("low", 0.5, 4.0),), preprocessing=PREPROCESSING)
    architecture = dict(branches=BRANCHES, embed_dim=64, num_heads=4)
    for key, value in changes.items():
        (architecture if key in ARCHITECTURE_FIELDS and key != "channels" else signal)[key] = value
    return ModalitySpec(**signal, families={"neurorvq": NeuroRVQConfig(**architecture)})


@pytest.fixture
def registered():
    """Names registered by a test; unregistered afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_modality(name)


# ------------------------------------------------------------------------------------------ built-ins
def test_builtins_are_listed() -> None:
    names = list_modalities()
    assert {"eeg", "ecg", "emg"} <= set(names)
    assert names == sorted(names)


def test_get_modality_is_case_insensitive() -> None:
    eeg = get_modality("eeg")
    assert get_modality("EEG") is eeg
    assert get_modality(" Eeg ") is eeg
    assert get_modality(eeg) is eeg  # a spec passes through


def test_eeg_vocabulary() -> None:
    eeg = get_modality("eeg")
    assert len(eeg.channels) == 104
    assert eeg.channels[0] == "a1"
    assert eeg.channels[36] == "cz"
    assert eeg.channels[103] == "tp9"
    assert as_neurorvq_spec(eeg).spatial_rows == 105
    assert eeg.neurorvq_config.spatial_offset == 0  # official layout: CLS shares row 0 with a1


def test_eeg_official_numbers() -> None:
    signal = get_modality("eeg")
    assert signal.sampling_rate == 200.0
    assert signal.patch_length == 200
    assert signal.unit == "uV"
    eeg = signal.neurorvq_config
    assert eeg.embed_dim == 200
    assert eeg.num_heads == 10
    assert eeg.n_quantizers == 8
    assert (eeg.codebook_size, eeg.code_dim) == (8192, 128)
    assert eeg.max_patches == 256
    assert eeg.num_branches == 4
    assert [b.kernel_sizes for b in eeg.branches] == [(21, 9), (15, 7), (9, 5), (5, 3)]
    assert [b.paddings for b in eeg.branches] == [(10, 4), (7, 3), (4, 2), (2, 1)]
    assert all(b.output_length(200) == 25 for b in eeg.branches)


def test_ecg_and_emg() -> None:
    ecg, emg = get_modality("ecg"), get_modality("emg")
    assert len(ecg.channels) == 15
    assert ecg.channels[:6] == ("avf", "avl", "avr", "i", "ii", "iii")
    assert len(emg.channels) == 16
    expected = ("c1", "c10", "c11", "c12", "c13", "c14", "c15", "c16", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9")
    assert emg.channels == expected
    assert emg.neurorvq_config.n_quantizers == 16
    assert emg.sampling_rate == 1000.0
    assert ecg.patch_length == 40 and ecg.neurorvq_config.embed_dim == 40
    assert "PROPOSAL" in ecg.doc
    assert "PROPOSAL" in emg.doc


# ------------------------------------------------------------------------------------------ registration
def test_duplicate_name_raises_and_overwrite_replaces(registered) -> None:
    first = register_modality(small_spec())
    registered.append("regtest")
    assert get_modality("regtest") is first
    with pytest.raises(ConfigError) as info:
        register_modality(small_spec(num_heads=8))
    message = str(info.value)
    assert "regtest" in message and "overwrite=True" in message
    assert get_modality("regtest") is first  # the failed call changed nothing
    second = register_modality(small_spec(num_heads=8), overwrite=True)
    assert get_modality("regtest") is second and second.neurorvq_config.num_heads == 8


def test_builtin_cannot_be_replaced_by_accident() -> None:
    eeg = get_modality("eeg")
    with pytest.raises(ConfigError, match="'eeg' is already registered"):
        register_modality(eeg.with_config("neurorvq", num_heads=8))
    assert get_modality("eeg") is eeg


def test_register_rejects_non_spec() -> None:
    with pytest.raises(ConfigError, match="ModalitySpec"):
        register_modality({"name": "x"})  # type: ignore[arg-type]


def test_unregister_removes(registered) -> None:
    register_modality(small_spec())
    assert "regtest" in list_modalities()
    unregister_modality("REGTEST")
    assert "regtest" not in list_modalities()
    unregister_modality("regtest")  # unknown names are ignored


# ------------------------------------------------------------------------------------------ validation
def test_branch_pools_kernels_mismatch() -> None:
    with pytest.raises(ConfigError) as info:
        TemporalBranch(kernel_sizes=(21, 9), pools=(2,))
    assert "pools" in str(info.value) and "kernel_sizes" in str(info.value)


def test_branch_paddings_mismatch_and_bad_values() -> None:
    with pytest.raises(ConfigError, match="paddings"):
        TemporalBranch(kernel_sizes=(21, 9), pools=(2, 4), paddings=(10,))
    with pytest.raises(ConfigError, match="kernel_sizes"):
        TemporalBranch(kernel_sizes=(), pools=())
    with pytest.raises(ConfigError, match="pools"):
        TemporalBranch(kernel_sizes=(3,), pools=(0,))


def test_pools_must_divide_patch_length() -> None:
    with pytest.raises(ConfigError) as info:
        small_spec(patch_length=60)
    message = str(info.value)
    assert "branches[0].pools" in message and "patch_length=60" in message


def test_embed_dim_must_match_temporal_encoder() -> None:
    with pytest.raises(ConfigError) as info:
        small_spec(embed_dim=60)
    message = str(info.value)
    assert "embed_dim" in message and "embed_dim=64" in message
    with pytest.raises(ConfigError, match="embed_dim=128"):
        small_spec(conv_channels=16, embed_dim=64)


def test_num_heads_must_divide_embed_dim() -> None:
    with pytest.raises(ConfigError) as info:
        small_spec(num_heads=6)
    message = str(info.value)
    assert "num_heads" in message and "[1, 2, 4, 8, 16, 32, 64]" in message


def test_branches_must_agree_on_output_length() -> None:
    mismatched = (TemporalBranch(kernel_sizes=(31, 15), pools=(2, 4)),
                  TemporalBranch(kernel_sizes=(31, 15), pools=(2, 4), paddings=(0, 0)))
    assert mismatched[0].output_length(64) != mismatched[1].output_length(64)
    with pytest.raises(ConfigError) as info:
        small_spec(branches=mismatched)
    assert "branches" in str(info.value) and "output lengths" in str(info.value)


def test_duplicate_channels_case_insensitive() -> None:
    with pytest.raises(ConfigError) as info:
        small_spec(channels=("Cz", "fz", "CZ"))
    assert "channels" in str(info.value) and "'cz'" in str(info.value)


def test_empty_channels() -> None:
    with pytest.raises(ConfigError, match="channels is empty"):
        small_spec(channels=())


@pytest.mark.parametrize("rate", [0, -64.0])
def test_bad_sampling_rate(rate) -> None:
    with pytest.raises(ConfigError, match="sampling_rate"):
        small_spec(sampling_rate=rate)


def test_band_above_nyquist() -> None:
    with pytest.raises(ConfigError) as info:
        small_spec(bands=(("high", 12.0, 40.0),))
    message = str(info.value)
    assert "bands" in message and "32.0" in message
    assert small_spec(bands=(("edge", 12.0, 32.0),)).bands == (("edge", 12.0, 32.0),)  # Nyquist itself is fine


@pytest.mark.parametrize("changes, field_name", [
    (dict(name="Upper"), "name"),
    (dict(groupnorm_groups=3), "groupnorm_groups"),
    (dict(spatial_offset=2), "spatial_offset"),
    (dict(codebook_size=0), "codebook_size"),
    (dict(decoder_depth=-1), "decoder_depth"),
])
def test_other_fields_are_named(changes, field_name) -> None:
    with pytest.raises(ConfigError, match=field_name):
        small_spec(**changes)


def test_replace_unknown_field() -> None:
    spec = small_spec()
    with pytest.raises(ConfigError) as info:
        spec.replace(embed_dims=64)
    assert "unknown ModalitySpec field(s) ['embed_dims']" in str(info.value)
    with pytest.raises(ConfigError, match=r"\['num_heads'\] are NeuroRVQ architecture fields, not signal fields"):
        spec.replace(num_heads=8)  # says where they live now
    assert spec.with_config("neurorvq", num_heads=8).neurorvq_config.num_heads == 8
    with pytest.raises(ConfigError, match="family 'neurorvq': num_heads"):  # with_config re-validates
        spec.with_config("neurorvq", num_heads=7)
    with pytest.raises(ConfigError, match=r"unknown NeuroRVQConfig field\(s\) \['num_head'\] \(did you mean 'num_heads'"):
        spec.with_config("neurorvq", num_head=8)
    with pytest.raises(ConfigError, match=r"declares no default 'toy' architecture \(declared: \['neurorvq'\]\)"):
        spec.config("toy")


def test_unknown_modality_lists_registered() -> None:
    with pytest.raises(ConfigError) as info:
        get_modality("no_such_modality_xyz")
    message = str(info.value)
    assert "no_such_modality_xyz" in message
    for name in ("ecg", "eeg", "emg"):
        assert f"'{name}'" in message


# ------------------------------------------------------------------------------------------ serialisation
@pytest.mark.parametrize("name", ["eeg", "ecg", "emg"])
def test_to_dict_from_dict_round_trip(name) -> None:
    import json

    spec = get_modality(name)
    data = json.loads(json.dumps(spec.to_dict()))  # through JSON, as save_pretrained does
    again = ModalitySpec.from_dict(data)
    assert again == spec
    assert again.doc == spec.doc
    assert again.neurorvq_config == spec.neurorvq_config and again.channels == spec.channels
    assert again.preprocessing == spec.preprocessing and again.aliases == spec.aliases
    assert again.config_hash() == spec.config_hash()


def test_from_dict_rejects_unknown_keys() -> None:
    data = small_spec().to_dict()
    data["heads"] = 4
    with pytest.raises(ConfigError, match="heads"):
        ModalitySpec.from_dict(data)


def test_from_dict_names_missing_fields_and_bad_branches() -> None:
    data = small_spec().to_dict()
    config = data["families"]["neurorvq"]

    def with_config(**changes):
        return {**data, "families": {"neurorvq": {**config, **changes}}}

    with pytest.raises(ConfigError, match=r"missing ModalitySpec field\(s\) \['patch_length'\]"):
        ModalitySpec.from_dict({k: v for k, v in data.items() if k != "patch_length"})
    with pytest.raises(ConfigError, match=r"family 'neurorvq': missing NeuroRVQConfig field\(s\) \['num_heads'\]"):
        ModalitySpec.from_dict({**data, "families": {"neurorvq": {k: v for k, v in config.items() if k != "num_heads"}}})
    with pytest.raises(ConfigError, match=r"branches\[1\] is 5; give a mapping"):
        ModalitySpec.from_dict(with_config(branches=[config["branches"][0], 5]))
    with pytest.raises(ConfigError, match=r"unknown TemporalBranch field\(s\) \['kernel'\] in branches\[0\]"):
        ModalitySpec.from_dict(with_config(branches=[{"kernel": [3], "pools": [2]}]))
    with pytest.raises(ConfigError, match=r"families names 'labram', which is not a tokenizer family"):
        ModalitySpec.from_dict({**data, "families": {"labram": {}}})
    with pytest.raises(ConfigError, match="channels is 'abc'; give a list"):
        ModalitySpec.from_dict({**data, "channels": "abc"})
    with pytest.raises(ConfigError, match="wrong form"):
        ModalitySpec.from_dict({**data, "patch_length": "sixty-four"})
    with pytest.raises(ConfigError, match=r"\['unit_'\] \(did you mean 'unit'\?\)"):
        ModalitySpec.from_dict({**data, "unit_": "uV"})
    with pytest.raises(ConfigError, match="preprocessing is missing; list the default steps"):
        ModalitySpec.from_dict({k: v for k, v in data.items() if k != "preprocessing"})
    with pytest.raises(ConfigError, match=r"preprocessing: unknown preprocessing step 'Bandpass'"):
        ModalitySpec.from_dict({**data, "preprocessing": [{"step": "Bandpass"}]})


def test_config_hash() -> None:
    a, b = small_spec(), small_spec(doc="same numbers, other words")
    assert a == b
    assert a.config_hash() == b.config_hash()  # doc is not part of the configuration
    assert a.config_hash() == small_spec().config_hash()  # stable across constructions
    assert len(a.config_hash()) == 16
    for changes in (dict(channels=("a", "c", "b")), dict(bands=()), dict(sampling_rate=128.0),
                    dict(preprocessing=({"step": "Resample"},))):
        changed = a.replace(**changes)
        assert changed != a and changed.config_hash() != a.config_hash(), changes
    for changes in (dict(num_heads=8), dict(max_patches=10), dict(spatial_offset=1)):  # the signal's hash stays,
        changed = a.with_config("neurorvq", **changes)  # the model's (the flat record's) moves
        assert changed != a and changed.config_hash() == a.config_hash(), changes
        assert as_neurorvq_spec(changed).config_hash() != as_neurorvq_spec(a).config_hash(), changes


def test_config_hash_ignores_int_vs_float() -> None:
    eeg = get_modality("eeg")
    same = eeg.replace(sampling_rate=200).with_config("neurorvq", mlp_ratio=4)
    assert same == eeg
    assert same.config_hash() == eeg.config_hash()
    assert as_neurorvq_spec(same).config_hash() == as_neurorvq_spec(eeg).config_hash()


# ------------------------------------------------------------------------------------------ spec files
@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
@pytest.mark.parametrize("name", ["eeg", "ecg", "semg200"])
def test_save_load_round_trip(tmp_path, name, suffix) -> None:
    spec = get_modality(name)
    path = spec.save(tmp_path / f"spec{suffix}")
    again = ModalitySpec.load(path)
    assert again == spec and again.doc == spec.doc and again.config_hash() == spec.config_hash()


def test_saved_json_has_one_field_per_line(tmp_path) -> None:
    import json

    text = small_spec().save(tmp_path / "regtest.json").read_text()
    assert json.loads(text)["families"]["neurorvq"]["embed_dim"] == 64
    assert '  "channels": ["a", "b", "c"],' in text.splitlines()
    assert '    {"step": "PickChannels"},' in text.splitlines()
    assert '      "embed_dim": 64,' in text.splitlines()
    assert '        {"kernel_sizes": [31, 15], "pools": [2, 4], "paddings": [15, 7], "strides": [1, 1]},' in text


def test_save_refuses_other_suffixes(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"spec.txt'.*\.json, \.yaml or \.yml"):
        small_spec().save(tmp_path / "spec.txt")


def test_get_modality_registers_a_spec_file_once(tmp_path, monkeypatch, registered) -> None:
    small_spec().save(tmp_path / "regtest.yaml")
    monkeypatch.chdir(tmp_path)
    registered.append("regtest")
    spec = get_modality("regtest.yaml")  # relative to the current folder
    assert spec == small_spec() and "regtest" in list_modalities()
    assert get_modality("regtest") is spec
    assert get_modality("regtest.yaml") is spec and get_modality(tmp_path / "regtest.yaml") is spec  # idempotent


def test_spec_file_equal_to_a_registered_spec_reuses_it(tmp_path, registered) -> None:
    in_code = register_modality(small_spec(doc="registered in code"))
    registered.append("regtest")
    small_spec(doc="other words, same numbers").save(tmp_path / "regtest.json")
    assert get_modality(str(tmp_path / "regtest.json")) is in_code


def test_spec_file_clashing_with_a_registered_spec_is_named(tmp_path, registered) -> None:
    registered.append("regtest")
    first = register_modality(small_spec())
    path = small_spec(num_heads=8, max_patches=10).save(tmp_path / "regtest.json")
    with pytest.raises(ConfigError) as info:
        get_modality(path)
    message = str(info.value)
    assert f"modality file '{path}' defines 'regtest', but a different 'regtest' is already registered" in message
    assert "families.neurorvq.num_heads: 8 vs 4" in message and "families.neurorvq.max_patches: 10 vs 256" in message
    assert '"regtest_v2"' in message
    assert get_modality("regtest") is first  # nothing replaced


def test_spec_file_cannot_take_a_builtin_name(tmp_path) -> None:
    eeg = get_modality("eeg")
    path = eeg.with_config("neurorvq", encoder_depth=2).save(tmp_path / "eeg.json")
    with pytest.raises(ConfigError, match="a different 'eeg' is already registered.*encoder_depth: 2 vs 12"):
        get_modality(path)
    assert get_modality("eeg") is eeg
    assert get_modality(eeg.save(tmp_path / "same.json")) is eeg  # the built-in's own numbers: reused


def test_missing_spec_file_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=rf"modality file 'ppg.json' does not exist \(relative paths start at the "
                                          rf"current folder, {re.escape(str(tmp_path))}\)"):
        get_modality("ppg.json")
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(ConfigError, match="modality file 'folder.json' is a folder"):
        get_modality("folder.json")


@pytest.mark.parametrize("file_name, text, expected", [
    ("bad.json", "{not json", r"modality file '.*bad.json' cannot be read as JSON: Expecting property name"),
    ("bad.yaml", "name: [ppg", r"modality file '.*bad.yaml', line 1, column 11: YAML syntax error"),
    ("list.json", "[1, 2]", r"modality file '.*list.json' holds a list, not a mapping of ModalitySpec fields"),
    ("empty.yaml", "", r"modality file '.*empty.yaml' holds a NoneType, not a mapping"),
])
def test_malformed_spec_file_is_named(tmp_path, file_name, text, expected) -> None:
    (tmp_path / file_name).write_text(text)
    with pytest.raises(ConfigError, match=expected):
        get_modality(str(tmp_path / file_name))


def test_invalid_spec_in_a_file_names_the_file_and_the_field(tmp_path) -> None:
    import json

    data = small_spec().to_dict()
    config = data["families"]["neurorvq"]
    for changes, expected in ((dict(families={"neurorvq": {**config, "embed_dim": 60}}),
                               "family 'neurorvq': embed_dim is 60 .* set embed_dim=64"),
                              (dict(embed_dim=64), r"\['embed_dim'\] are NeuroRVQ architecture fields, not signal"),
                              (dict(unit_=64), r"unknown ModalitySpec field\(s\) \['unit_'\]"),
                              (dict(families={"neurorvq": {**config, "num_heads": None}}), "wrong form")):
        path = tmp_path / "regtest.json"
        path.write_text(json.dumps({**data, **changes}))
        with pytest.raises(ConfigError, match=rf"^modality file '{re.escape(str(path))}': .*{expected}"):
            ModalitySpec.load(path)
    assert "regtest" not in list_modalities()


def test_a_name_with_another_suffix_is_not_a_spec_file() -> None:
    assert is_spec_file("ppg.json") and is_spec_file(" PPG.YML ") and is_spec_file(Path("ppg"))
    assert not is_spec_file("ppg") and not is_spec_file("ppg.txt")
    with pytest.raises(ConfigError, match=r"unknown modality 'ppg.txt': a spec file's name must end in \.json"):
        get_modality("ppg.txt")


def test_a_tokenizer_is_built_from_a_spec_file(tmp_path, registered) -> None:
    from neurorvq.models.tokenizer import NeuroRVQTokenizer

    registered.append("regtest")
    path = small_spec().save(tmp_path / "regtest.json")
    model = NeuroRVQTokenizer(str(path), encoder_depth=1, decoder_depth=0, codebook_size=16, code_dim=8)
    assert model.spec == as_neurorvq_spec(small_spec(encoder_depth=1, decoder_depth=0, codebook_size=16, code_dim=8))


# ------------------------------------------------------------------------------------------ channel ids
def test_resolve_channel_ids() -> None:
    eeg = get_modality("eeg")
    assert resolve_channel_ids(eeg, ["CZ", "cz", "Cz "]) == [36, 36, 36]
    assert resolve_channel_ids(eeg, ["a1", 36, "TP9", 103]) == [0, 36, 103, 103]
    assert resolve_channel_ids(eeg, []) == []


def test_resolve_unknown_names_suggests_closest() -> None:
    eeg = get_modality("eeg")
    with pytest.raises(InputError) as info:
        resolve_channel_ids(eeg, ["Czz", "fp1", "qqqqq"])
    message = str(info.value)
    assert "'Czz'" in message and "closest: cz" in message
    assert "'qqqqq'" in message
    assert "'fp1'" not in message  # known names are not reported


@pytest.mark.parametrize("bad", [104, -1])
def test_resolve_ids_out_of_range(bad) -> None:
    eeg = get_modality("eeg")
    with pytest.raises(InputError) as info:
        resolve_channel_ids(eeg, [0, bad])
    assert f"id {bad}" in str(info.value) and "0..103" in str(info.value)


def test_resolve_decodes_file_names_and_numpy_ids() -> None:
    eeg = get_modality("eeg")
    assert resolve_channel_ids(eeg, [b"a1", np.bytes_(b"CZ\x00"), np.str_("tp9"), np.int64(36)]) == [0, 36, 103, 36]
    assert resolve_channel_ids(eeg, np.array([b"a1", b"cz"])) == [0, 36]
    assert resolve_channel_ids(eeg, np.array([0, 36])) == [0, 36]


@pytest.mark.parametrize("bad, message", [
    (["a1", "cz", "fz", 1.0], r"channels\[3\] is a float \(1\.0\): give a name \(str or bytes\) or an integer id"),
    ([None], r"channels\[0\] is None"),
    ([True], r"channels\[0\] is a bool"),
    ("a1", r"channels is a single string"),
])
def test_resolve_refuses_what_is_neither_name_nor_id(bad, message) -> None:
    with pytest.raises(InputError, match=message):
        resolve_channel_ids(get_modality("eeg"), bad)


def test_spec_with_bytes_or_numpy_channels_equals_the_str_one() -> None:
    assert small_spec(channels=(b"A", np.bytes_(b"b\x00"), np.str_("C"))) == small_spec()
    assert small_spec(channels=np.array([b"a", b"b", b"c"])) == small_spec()
    eeg = get_modality("eeg")
    assert eeg.replace(channels=tuple(c.encode() for c in eeg.channels)) == eeg  # an official list stored as bytes


@pytest.mark.parametrize("channels, message", [
    (("a", None), r"modality 'regtest': channels\[1\] is None"),
    (("a", 1.5), r"modality 'regtest': channels\[1\] is a float \(1\.5\)"),
    ("abc", r"modality 'regtest': channels is a single string \('abc'\)"),
])
def test_spec_channels_neither_names_nor_ids_are_a_config_error(channels, message) -> None:
    with pytest.raises(ConfigError, match=message):
        small_spec(channels=channels)


# ------------------------------------------------------------------------------------------ entry points
SPEC_SOURCE = """
from neurorvq.families.neurorvq import NeuroRVQConfig, TemporalBranch
from neurorvq.registry import ModalitySpec

def _spec(name):
    return ModalitySpec(name=name, sampling_rate=64.0, patch_length=64, channels=("p1", "p2"),
                        preprocessing=[{"step": "PickChannels"}, {"step": "Resample"}],
                        families={"neurorvq": NeuroRVQConfig(
                            branches=(TemporalBranch(kernel_sizes=(7, 3), pools=(2, 4)),), embed_dim=64,
                            num_heads=4)},
                        doc="test plug-in")
"""


def make_plugin(root: Path, dist: str, module: str, body: str, entry_points: str) -> Path:
    """A fake installed distribution in ``root``: ``module.py`` plus ``dist-0.1.dist-info``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(SPEC_SOURCE) + textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}\n")
    importlib.invalidate_caches()
    return root


@pytest.fixture
def plugin_cleanup():
    """Module names and modality names to drop after an entry-point test."""
    modules: list[str] = []
    names: list[str] = []
    list_modalities()  # built-ins discovered before the plug-in appears on sys.path
    yield modules, names
    for name in names:
        unregister_modality(name)
    for module in modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


def test_entry_point_spec_is_discovered(tmp_path, monkeypatch, plugin_cleanup) -> None:
    modules, names = plugin_cleanup
    modules.append("plugin_mod_xyz")
    names.append("plugtest")
    root = make_plugin(tmp_path / "site", "plugin-xyz", "plugin_mod_xyz", "SPEC = _spec('plugtest')\n",
                       "plugtest = plugin_mod_xyz:SPEC")
    assert "plugtest" not in list_modalities()
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    assert refresh_entry_points() == ["plugtest"]
    spec = get_modality("plugtest")
    assert spec is sys.modules["plugin_mod_xyz"].SPEC
    assert spec.channels == ("p1", "p2")
    assert "plugtest" in list_modalities()
    assert refresh_entry_points() == []  # already registered: nothing new, no duplicate error


def test_entry_point_found_by_lookup(tmp_path, monkeypatch, plugin_cleanup) -> None:
    modules, names = plugin_cleanup
    modules.append("plugin_mod_lookup")
    names.append("pluglookup")
    root = make_plugin(tmp_path / "site", "plugin-lookup", "plugin_mod_lookup", "SPEC = _spec('pluglookup')\n",
                       "pluglookup = plugin_mod_lookup:SPEC")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    # no explicit refresh: an unknown name re-scans the entry points
    assert get_modality("PlugLookup").name == "pluglookup"


def test_entry_point_callable_is_discovered(tmp_path, monkeypatch, plugin_cleanup) -> None:
    modules, names = plugin_cleanup
    modules.append("plugin_mod_call")
    names.append("plugcall")
    body = "CALLS = []\n\ndef make_spec():\n    CALLS.append(1)\n    return _spec('plugcall')\n"
    root = make_plugin(tmp_path / "site", "plugin-call", "plugin_mod_call", body, "plugcall = plugin_mod_call:make_spec")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    assert refresh_entry_points() == ["plugcall"]
    assert get_modality("plugcall").name == "plugcall"
    assert sys.modules["plugin_mod_call"].CALLS == [1]
    assert refresh_entry_points() == []
    assert sys.modules["plugin_mod_call"].CALLS == [1]  # not called again once registered


def test_self_registering_plugin_is_not_registered_twice(tmp_path, monkeypatch, plugin_cleanup) -> None:
    modules, names = plugin_cleanup
    modules.append("plugin_mod_self")
    names.append("plugself")
    body = "from neurorvq.registry import register_modality\nSPEC = register_modality(_spec('plugself'))\n"
    root = make_plugin(tmp_path / "site", "plugin-self", "plugin_mod_self", body, "plugself = plugin_mod_self:SPEC")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    assert refresh_entry_points() == ["plugself"]
    assert get_modality("plugself") is sys.modules["plugin_mod_self"].SPEC


def test_broken_entry_point_is_named(tmp_path, monkeypatch, plugin_cleanup) -> None:
    modules, names = plugin_cleanup
    modules.append("plugin_mod_broken")
    root = make_plugin(tmp_path / "site", "plugin-broken", "plugin_mod_broken", "SPEC = _spec('plugbroken')\n",
                       "plugbroken = plugin_mod_broken:NO_SUCH_SPEC")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    with pytest.raises(ConfigError) as info:
        refresh_entry_points()
    message = str(info.value)
    assert "plugbroken = plugin_mod_broken:NO_SUCH_SPEC" in message
    assert ENTRY_POINT_GROUP in message
    assert "plugbroken" not in list_modalities()


def test_entry_point_of_wrong_type_is_named(tmp_path, monkeypatch, plugin_cleanup) -> None:
    modules, _ = plugin_cleanup
    modules.append("plugin_mod_wrong")
    root = make_plugin(tmp_path / "site", "plugin-wrong", "plugin_mod_wrong", "NOT_A_SPEC = {'name': 'x'}\n",
                       "plugwrong = plugin_mod_wrong:NOT_A_SPEC")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    with pytest.raises(ConfigError) as info:
        refresh_entry_points()
    assert "plugwrong" in str(info.value) and "not a ModalitySpec" in str(info.value)


def test_callable_entry_point_with_other_spec_name_refreshes_cleanly(tmp_path, monkeypatch, plugin_cleanup) -> None:
    modules, names = plugin_cleanup
    modules.append("plugin_mod_alias")
    names.append("plugaliased")
    body = "def make_spec():\n    return _spec('plugaliased')\n"
    root = make_plugin(tmp_path / "site", "plugin-alias", "plugin_mod_alias", body, "plugalias = plugin_mod_alias:make_spec")
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    assert refresh_entry_points() == ["plugaliased"]
    assert refresh_entry_points() == []  # raises ConfigError: modality 'plugaliased' is already registered


def test_broken_entry_point_does_not_hide_others(tmp_path, monkeypatch, plugin_cleanup) -> None:
    modules, names = plugin_cleanup
    modules += ["plugin_mod_bad", "plugin_mod_after"]
    names.append("plugafter")
    bad = make_plugin(tmp_path / "bad", "plugin-bad", "plugin_mod_bad", "", "plugbad = plugin_mod_bad:MISSING")
    good = make_plugin(tmp_path / "good", "plugin-after", "plugin_mod_after", "SPEC = _spec('plugafter')\n",
                       "plugafter = plugin_mod_after:SPEC")
    monkeypatch.syspath_prepend(str(good))
    monkeypatch.syspath_prepend(str(bad))  # the broken distribution is scanned first
    importlib.invalidate_caches()
    with pytest.raises(ConfigError, match="plugbad"):
        refresh_entry_points()  # reporting the broken plug-in is right ...
    assert get_modality("plugafter").name == "plugafter"  # ... but the healthy one must still load


def test_low_rate_semg_modality() -> None:
    spec = get_modality("semg200")
    assert spec.sampling_rate == 200.0 and spec.patch_length == 50 and spec.unit == "au"
    config = spec.neurorvq_config
    assert all(b.output_length(50) == 5 for b in config.branches) and config.embed_dim == 40
    assert 300 % spec.patch_length == 0  # the armband's 1.5 s segments are whole patches
    assert spec.channels == get_modality("emg").channels
    assert "PROPOSAL" in spec.doc


def test_preprocessing_and_aliases_are_the_spec_s() -> None:
    from neurorvq.data.channels import map_channels
    from neurorvq.data.preprocess import Pipeline

    spec = small_spec(preprocessing=[{"step": "PickChannels"}, {"step": "BandPass", "low": 0.5, "high": 20.0},
                                     {"step": "Resample"}], aliases={"A_lead": "a"})
    assert [s["step"] for s in Pipeline.default(spec).config()["steps"]] == ["PickChannels", "BandPass", "Resample"]
    assert map_channels(["A_LEAD", "b"], spec).names == ["a", "b"]  # the spec's aliases, keys lower-cased
    assert get_modality("ecg").aliases["mlii"] == "ii"
    with pytest.raises(ConfigError, match=r"aliases point to \['z'\], which are not in the vocabulary"):
        small_spec(aliases={"zz": "z"})
    with pytest.raises(ConfigError, match=r"preprocessing is 'Resample'; give a list of steps"):
        small_spec(preprocessing="Resample")


def test_a_signal_without_any_family_default_is_a_valid_spec() -> None:
    spec = ModalitySpec(name="regtest", sampling_rate=64.0, patch_length=64, channels=("a",),
                        preprocessing=[{"step": "Resample"}])
    assert spec.families == {} and spec.to_dict()["families"] == {}
    with pytest.raises(ConfigError, match="declares no default 'neurorvq' architecture"):
        spec.neurorvq_config
