"""NeuroRVQConfig: the architecture part of a modality spec, validated against a patch length."""

import pytest

from neurorvq import ConfigError, get_modality
from neurorvq.families.neurorvq import ARCHITECTURE_FIELDS, NeuroRVQConfig, TemporalBranch


def test_eeg_config_holds_the_official_architecture():
    config = get_modality("eeg").neurorvq_config
    assert config.num_branches == 4 and config.embed_dim == 200 and config.num_heads == 10
    assert (config.n_quantizers, config.codebook_size, config.code_dim, config.max_patches) == (8, 8192, 128, 256)
    assert config.branches[0] == TemporalBranch(kernel_sizes=(21, 9), pools=(2, 4))
    assert ARCHITECTURE_FIELDS == tuple(config.to_dict())


@pytest.mark.parametrize("name", ["eeg", "ecg", "emg", "semg200"])
def test_round_trip_through_a_dict(name):
    spec = get_modality(name)
    config = spec.neurorvq_config
    again = NeuroRVQConfig.from_dict(config.to_dict())
    assert again == config
    again.validate(spec.patch_length, f"modality '{name}'")  # a built-in's architecture is valid for its patches


def test_branches_given_as_mappings_become_temporal_branches():
    config = NeuroRVQConfig(branches=[{"kernel_sizes": [5, 3], "pools": [2, 4]}], embed_dim=64, num_heads=4)
    assert config.branches == (TemporalBranch((5, 3), (2, 4)),)
    config.validate(64, "test")


def test_validation_names_the_owner_field_and_fix():
    config = NeuroRVQConfig(branches=(TemporalBranch((5, 3), (2, 4)),), embed_dim=60, num_heads=4)
    with pytest.raises(ConfigError, match=r"^modality 'ppg': embed_dim is 60 .* = 8 x 8 = 64; set embed_dim=64"):
        config.validate(64, "modality 'ppg'")
    with pytest.raises(ConfigError, match=r"branches\[0\]\.pools \(2, 4\) \(product 8\) do not divide patch_length=60"):
        config.validate(60, "modality 'ppg'")


def test_unknown_fields_are_named():
    with pytest.raises(ConfigError, match=r"unknown NeuroRVQConfig field\(s\) \['embed_dims'\]"):
        NeuroRVQConfig.from_dict({"branches": [], "embed_dims": 8, "num_heads": 1})
    with pytest.raises(ConfigError, match=r"unknown TemporalBranch field\(s\) \['pool'\] in branches\[0\]"):
        NeuroRVQConfig(branches=[{"kernel_sizes": [5], "pool": [2]}], embed_dim=8, num_heads=1)


def test_registry_reexports_the_moved_branch():
    from neurorvq.registry import TemporalBranch as FromRegistry

    assert FromRegistry is TemporalBranch


def test_a_vocabulary_of_the_model_s_own_is_decoded_and_validated():
    branch = (TemporalBranch((5, 3), (2, 4)),)
    config = NeuroRVQConfig(branches=branch, embed_dim=64, num_heads=4, channels=[b"CZ\x00", "C3"])
    assert config.channels == ("cz", "c3")
    config.validate(64, "test")
    with pytest.raises(ConfigError, match=r"channels repeats \['cz'\]"):
        NeuroRVQConfig(branches=branch, embed_dim=64, num_heads=4, channels=["cz", "CZ"]).validate(64, "test")
    with pytest.raises(ConfigError, match="channels is empty"):
        NeuroRVQConfig(branches=branch, embed_dim=64, num_heads=4, channels=[]).validate(64, "test")
    assert NeuroRVQConfig.from_dict(config.to_dict()) == config
