"""BaselineTask: ours by default, braindecode only when asked, description() of what ran, features() of a batch."""

from __future__ import annotations

import json
import types

import pytest
import torch
from torch import nn

import neurorvq.baselines as baselines
from neurorvq.baselines import EEGNet, ShallowConvNet
from neurorvq.errors import ConfigError
from neurorvq.tasks.baseline import BaselineTask



class _FakeBraindecodeEEGNet(nn.Sequential):
    """A braindecode-like EEGNet: sequential, settings kept as attributes, records its keyword arguments."""

    def __init__(self, n_chans=None, n_outputs=None, n_times=None, sfreq=None, kernel_length=64, drop_prob=0.25,
                 norm_rate=0.25, final_layer_with_constraint=False, activation=nn.ELU):
        super().__init__(nn.Conv1d(n_chans, 4, 5), nn.ELU(), nn.Flatten(),
                         nn.Sequential(nn.Flatten(), nn.Linear(4 * (n_times - 4), n_outputs)))
        self.kwargs = dict(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, sfreq=sfreq,
                           final_layer_with_constraint=final_layer_with_constraint)
        self.kernel_length, self.drop_prob, self.norm_rate = kernel_length, drop_prob, norm_rate
        self.activation = activation


@pytest.fixture
def fake_braindecode(monkeypatch):
    models = types.ModuleType("braindecode.models")
    models.EEGNet = type("EEGNet", (_FakeBraindecodeEEGNet,), {})
    monkeypatch.setattr(baselines, "_import_braindecode_models", lambda: (models, ""))
    return models


def batch(n: int = 3, channels: int = 8, samples: int = 300) -> dict[str, torch.Tensor]:
    return {"signal": torch.randn(n, channels, samples), "channel_ids": torch.arange(channels).expand(n, -1),
            "label": torch.zeros(n, dtype=torch.long)}


def test_default_implementation_is_ours_even_with_braindecode(fake_braindecode):
    task = BaselineTask("eegnet", n_channels=8, n_times=300)
    assert task.implementation == "neurorvq" and task.hparams.implementation == "neurorvq"
    assert isinstance(task.network, EEGNet)
    with pytest.raises(ConfigError, match="'auto' was removed"):
        BaselineTask("eegnet", implementation="auto")


def test_description_of_ours():
    task = BaselineTask("shallow", num_classes=2, n_channels=8, n_times=300, options={"dropout": 0.3})
    d = task.description()
    assert json.loads(json.dumps(d)) == d
    assert {k: d[k] for k in ("architecture", "implementation", "modality", "sampling_rate", "n_channels", "n_times",
                              "n_outputs", "options")} == {
        "architecture": "shallow_convnet", "implementation": "neurorvq", "modality": "eeg", "sampling_rate": 200.0,
        "n_channels": 8, "n_times": 300, "n_outputs": 1, "options": {"dropout": 0.3}}
    assert "braindecode_version" not in d
    network = d["network"]
    assert network["class"] == "neurorvq.baselines.shallow_convnet.ShallowConvNet"
    assert network["settings"]["temporal_kernel"] == 20 and network["settings"]["pool"] == 60
    assert network["settings"]["dropout"] == 0.3 and network["final_layer"] == "Linear"
    unbuilt = BaselineTask("eegnet", num_classes=4).description()  # before setup: no network yet
    assert unbuilt["network"] is None and unbuilt["n_channels"] is None and unbuilt["n_outputs"] == 4


@pytest.mark.parametrize("architecture, n_features", [("eegnet", 96), ("shallow_convnet", 760)])
def test_features_of_a_batch(architecture, n_features):
    torch.manual_seed(0)
    task = BaselineTask(architecture, num_classes=2, n_channels=8, n_times=300).eval()
    b = batch()
    with torch.no_grad():
        features = task.features(b)
        assert features.shape == (3, n_features)
        assert torch.equal(task.logits(b), task.network.classify(features))
    with pytest.raises(ConfigError, match=r"built for 8 channels x 300 samples but a batch has \(7, 300\)"):
        task.features(batch(channels=7))
    with pytest.raises(ConfigError, match="network is built at setup"):
        BaselineTask(architecture).features(b)


def test_braindecode_task_records_what_ran_and_gives_features(fake_braindecode):
    task = BaselineTask("eegnet", num_classes=3, n_channels=8, n_times=300, implementation="braindecode",
                        options={"drop_prob": 0.5}).eval()
    assert type(task.network) is fake_braindecode.EEGNet
    assert task.network.kwargs["final_layer_with_constraint"] is True  # the paper's dense max-norm is kept
    d = task.description()
    assert json.loads(json.dumps(d)) == d
    assert d["implementation"] == "braindecode" and "braindecode_version" in d
    assert d["network"]["settings"] == {"kernel_length": 64, "drop_prob": 0.5, "norm_rate": 0.25}
    assert d["network"]["arguments"] == {"n_chans": 8, "n_outputs": 3, "n_times": 300, "sfreq": 200.0,
                                         "drop_prob": 0.5, "final_layer_with_constraint": True}
    assert d["network"]["final_layer"] == "Linear"
    b = batch()
    with torch.no_grad():
        features = task.features(b)  # by a forward hook on the last Linear
        assert features.shape == (3, 4 * 296)
        assert torch.equal(task.network[3][1](features), task.logits(b))


def test_shallow_task_constraints_hook_is_harmless():
    """on_train_batch_end calls apply_constraints on any network; ShallowConvNet's does nothing."""
    task = BaselineTask("shallow", n_channels=4, n_times=200)
    assert isinstance(task.network, ShallowConvNet)
    before = {k: v.clone() for k, v in task.network.state_dict().items()}
    task.network.apply_constraints()
    assert all(torch.equal(before[k], v) for k, v in task.network.state_dict().items())
