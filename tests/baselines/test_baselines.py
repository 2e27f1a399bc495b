"""EEGNet and ShallowConvNet baselines: shapes, published sizes, constraints, training, build_baseline."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import neurorvq.baselines as baselines
from neurorvq.baselines import (EEGNet, ShallowConvNet, baseline_implementation, build_baseline, eegnet_sizes,
                                shallow_convnet_sizes)
from neurorvq.errors import ConfigError, InputError

MODELS = [EEGNet, ShallowConvNet]
# (channels, samples, Hz, classes, n_outputs, expected logits per sample)
SHAPES = [(8, 300, 200.0, 22, None, 22), (64, 800, 200.0, 2, 1, 1), (22, 1000, 250.0, 4, None, 4)]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def sgd_step(model: nn.Module, lr: float) -> None:
    """Plain SGD by hand (torch.optim's first use imports torch._dynamo: seconds on a small machine)."""
    for p in model.parameters():
        p -= lr * p.grad
        p.grad = None



@pytest.fixture
def no_braindecode(monkeypatch):
    """Make `import braindecode` fail whether or not it is installed."""
    monkeypatch.setitem(sys.modules, "braindecode", None)
    monkeypatch.setitem(sys.modules, "braindecode.models", None)


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_output_shapes_and_backward(cls, shape):
    torch.manual_seed(0)
    c, t, fs, n_classes, n_outputs, expected = shape
    model = cls(c, t, n_classes, fs, n_outputs=n_outputs)
    out = model(torch.randn(3, c, t))
    assert out.shape == (3, expected) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_eegnet_published_sizes_at_128_hz():
    model = EEGNet(64, 128, 4, 128.0)
    assert (model.temporal_kernel, model.pool1, model.separable_kernel, model.pool2) == (64, 4, 16, 8)
    conv_t = model.temporal[1]
    assert conv_t.out_channels == 8 and conv_t.kernel_size == (1, 64)
    assert model.depthwise.out_channels == 16 and model.depthwise.groups == 8  # F1 * D, D = 2 per filter
    assert model.depthwise.kernel_size == (64, 1) and model.depthwise.max_norm == 1.0
    sep_depth, sep_point = model.separable[1], model.separable[2]
    assert sep_depth.kernel_size == (1, 16) and sep_depth.groups == 16 and sep_point.out_channels == 16
    assert model.classifier.in_features == 16 * (128 // 32) and model.classifier.max_norm == 0.25
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.25, 0.25]


def test_shallow_published_sizes_at_250_hz():
    model = ShallowConvNet(22, 1000, 4, 250.0)
    assert (model.temporal_kernel, model.pool, model.pool_stride) == (25, 75, 15)
    assert model.conv_temporal.out_channels == 40 and model.conv_temporal.kernel_size == (1, 25)
    assert model.conv_spatial.out_channels == 40 and model.conv_spatial.kernel_size == (22, 1)
    assert model.pooling.kernel_size == (1, 75) and model.pooling.stride == (1, 15)
    assert model.dropout.p == 0.5
    assert model.n_features == 40 * ((1000 - 25 + 1 - 75) // 15 + 1)  # 61 pooled steps


def test_sampling_rate_scaling():
    assert eegnet_sizes(128) == {"temporal_kernel": 64, "pool1": 4, "separable_kernel": 16, "pool2": 8}
    assert eegnet_sizes(200) == {"temporal_kernel": 100, "pool1": 6, "separable_kernel": 17, "pool2": 8}
    assert eegnet_sizes(250) == {"temporal_kernel": 125, "pool1": 8, "separable_kernel": 16, "pool2": 8}
    assert shallow_convnet_sizes(250) == {"temporal_kernel": 25, "pool": 75, "pool_stride": 15}
    assert shallow_convnet_sizes(200) == {"temporal_kernel": 20, "pool": 60, "pool_stride": 12}
    model = EEGNet(8, 300, 2, 200.0, temporal_kernel=32, pool2=4)  # explicit sizes win
    assert (model.temporal_kernel, model.pool1, model.pool2) == (32, 6, 4)


def test_eegnet_8_2_parameter_count_by_hand():
    c, t, n_classes, f1, d, f2 = 64, 128, 4, 8, 2, 16
    by_hand = (
        f1 * 64              # temporal conv, kernel 64, no bias
        + 2 * f1             # BatchNorm gamma, beta
        + f1 * d * c         # depthwise spatial conv, no bias
        + 2 * f1 * d         # BatchNorm
        + f1 * d * 16        # separable: depthwise part, kernel 16
        + f1 * d * f2        # separable: pointwise part
        + 2 * f2             # BatchNorm
        + f2 * (t // 4 // 8) * n_classes + n_classes  # dense
    )
    assert by_hand == 2388
    assert n_params(EEGNet(c, t, n_classes, 128.0)) == by_hand


def test_shallow_parameter_count_by_hand():
    # 40*25 temporal + 40*40*22 spatial + 2*40 BatchNorm + dense over 40*61 features to 4 classes
    assert n_params(ShallowConvNet(22, 1000, 4, 250.0)) == 1000 + 35200 + 80 + 40 * 61 * 4 + 4


def test_max_norm_holds_after_huge_step():
    torch.manual_seed(0)
    model = EEGNet(8, 256, 3, 128.0)
    F.cross_entropy(model(torch.randn(16, 8, 256)), torch.randint(0, 3, (16,))).backward()
    sgd_step(model, lr=1e4)

    def row_norms(w: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(w.flatten(1), dim=1)

    # the raw weights left the ball, the weights the forward uses did not
    assert row_norms(model.depthwise.weight).max() > 1.0 and row_norms(model.classifier.weight).max() > 0.25
    assert row_norms(model.depthwise.constrained_weight()).max() <= 1.0 + 1e-5
    assert row_norms(model.classifier.constrained_weight()).max() <= 0.25 + 1e-5
    model.eval()
    x = torch.randn(4, 8, 256)
    before = model(x)
    model.apply_constraints()  # projecting the stored weights does not change the function
    assert row_norms(model.depthwise.weight).max() <= 1.0 + 1e-5
    assert row_norms(model.classifier.weight).max() <= 0.25 + 1e-5
    assert torch.allclose(model(x), before, atol=1e-5)


def two_channel_sine_problem(n: int, n_times: int, fs: float, seed: int = 0):
    """Class k: a 10 Hz sine on channel k (of 2), noise elsewhere."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    t = torch.arange(n_times) / fs
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    x = 0.5 * torch.randn(n, 2, n_times, generator=g)
    x[torch.arange(n), y] += torch.sin(2 * math.pi * 10 * t + phase)
    return x, y


@pytest.mark.parametrize("cls", MODELS)
def test_sgd_reduces_loss_on_toy_problem(cls):
    torch.manual_seed(0)
    x, y = two_channel_sine_problem(32, 200, 200.0)
    model = cls(2, 200, 2, 200.0, dropout=0.0)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        sgd_step(model, lr=0.1)
        model.apply_constraints()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("cls", MODELS)
def test_eval_mode_predicts_what_training_learned_after_few_steps(cls):
    """After a few dozen steps the BatchNorm running statistics must follow the data, or eval-mode outputs collapse
    to one class (what Keras's momentum, bn_momentum=0.01, did to EEGNet here: 0.5 in eval, 1.0 in train mode)."""
    torch.manual_seed(0)
    x, y = two_channel_sine_problem(64, 200, 200.0)
    model = cls(2, 200, 2, 200.0, dropout=0.0)
    for _ in range(40):
        F.cross_entropy(model(x), y).backward()
        sgd_step(model, lr=0.1)
        model.apply_constraints()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(-1) == y).float().mean().item()
    assert accuracy > 0.9, accuracy


def test_eegnet_short_input_reduces_pools():
    with pytest.warns(UserWarning, match=r"pools reduced to 4 and 5"):
        model = EEGNet(4, 20, 2, 128.0)  # 20 < 4 * 8
    assert (model.pool1, model.pool2) == (4, 5) and model(torch.randn(2, 4, 20)).shape == (2, 2)
    with pytest.warns(UserWarning, match=r"pools reduced to 3 and 1"):
        model = EEGNet(4, 3, 2, 128.0)
    assert model(torch.randn(2, 4, 3)).shape == (2, 2)


def test_shallow_short_input():
    with pytest.raises(ConfigError, match=r"n_times=20 is shorter than the temporal kernel \(25 samples"):
        ShallowConvNet(4, 20, 2, 250.0)
    with pytest.warns(UserWarning, match=r"pool reduced to 26"):
        model = ShallowConvNet(4, 50, 2, 250.0)  # conv leaves 26 < 75
    assert model.pool == 26 and model(torch.randn(2, 4, 50)).shape == (2, 2)


@pytest.mark.parametrize("cls", MODELS)
def test_wrong_input_shape_and_bad_args(cls):
    model = cls(8, 300, 2, 200.0)
    with pytest.raises(InputError, match=r"\[batch, 8, 300\].*got \[2, 8, 299\]"):
        model(torch.randn(2, 8, 299))
    with pytest.raises(ConfigError, match="n_channels must be a positive int"):
        cls(0, 300, 2, 200.0)
    with pytest.raises(ConfigError, match="sampling_rate must be > 0"):
        cls(8, 300, 2, 0.0)


def test_build_baseline_ours(no_braindecode):
    assert baseline_implementation() == "neurorvq" and baseline_implementation("NeuroRVQ") == "neurorvq"
    model = build_baseline("eegnet", 8, 300, 2, 200.0, n_outputs=1)
    assert isinstance(model, EEGNet) and model.n_outputs == 1
    for name in ("shallow", "shallow_convnet", "Shallow-ConvNet"):
        model = build_baseline(name, 8, 300, 3, 200.0, implementation="neurorvq", dropout=0.3)
        assert isinstance(model, ShallowConvNet) and model.n_outputs == 3 and model.dropout.p == 0.3


def test_build_baseline_errors(no_braindecode):
    with pytest.raises(ConfigError, match=r"unknown baseline 'deepconvnet'.*eegnet, shallow_convnet, shallow"):
        build_baseline("deepconvnet", 8, 300, 2, 200.0)
    with pytest.raises(ConfigError, match=r"unknown baseline implementation 'keras'; choose one of neurorvq, "
                                          r"braindecode$"):
        build_baseline("eegnet", 8, 300, 2, 200.0, implementation="keras")
    with pytest.raises(ConfigError, match=r"'auto' was removed.*choose one of neurorvq, braindecode"):
        build_baseline("eegnet", 8, 300, 2, 200.0, implementation="auto")
    with pytest.raises(ConfigError, match=r'pip install "neurorvq\[braindecode\]"'):
        build_baseline("eegnet", 8, 300, 2, 200.0, implementation="braindecode")
    with pytest.raises(ConfigError, match=r'pip install "neurorvq\[braindecode\]"'):
        baseline_implementation("braindecode")


class _FakeModel(nn.Module):
    """Stand-in for a braindecode class: records its keyword arguments."""

    def __init__(self, n_chans=None, n_outputs=None, n_times=None, sfreq=None, **kwargs):
        super().__init__()
        self.kwargs = dict(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, sfreq=sfreq, **kwargs)


class _FakeNewEEGNet(_FakeModel):
    """braindecode >= 1.0: ``EEGNet`` with ``final_layer_with_constraint`` (default False) and ``norm_rate``."""

    def __init__(self, n_chans=None, n_outputs=None, n_times=None, sfreq=None, final_layer_with_constraint=False,
                 norm_rate=0.25, drop_prob=0.25, kernel_length=64, **kwargs):
        super().__init__(n_chans, n_outputs, n_times, sfreq, final_layer_with_constraint=final_layer_with_constraint,
                         norm_rate=norm_rate, drop_prob=drop_prob, kernel_length=kernel_length, **kwargs)
        self.kernel_length, self.norm_rate, self.drop_prob = kernel_length, norm_rate, drop_prob


class _FakeOld(_FakeModel):
    """braindecode 0.8: ``EEGNetv4`` without the dense constraint, a log-softmax flag."""

    def __init__(self, n_chans=None, n_outputs=None, n_times=None, sfreq=None, add_log_softmax=True, **kwargs):
        super().__init__(n_chans, n_outputs, n_times, sfreq, add_log_softmax=add_log_softmax, **kwargs)


def fake_braindecode(monkeypatch, old: bool = False) -> types.ModuleType:
    """Install a stand-in ``braindecode.models`` through ``_import_braindecode_models``."""
    models = types.ModuleType("braindecode.models")
    eegnet_cls = type("EEGNetv4", (_FakeOld,), {}) if old else type("EEGNet", (_FakeNewEEGNet,), {})
    setattr(models, eegnet_cls.__name__, eegnet_cls)
    models.ShallowFBCSPNet = type("ShallowFBCSPNet", (_FakeOld if old else _FakeModel,), {})
    monkeypatch.setattr(baselines, "_import_braindecode_models", lambda: (models, ""))
    return models


def test_default_is_ours_even_when_braindecode_imports(monkeypatch):
    fake_braindecode(monkeypatch)
    assert baseline_implementation() == "neurorvq" and baseline_implementation("braindecode") == "braindecode"
    assert isinstance(build_baseline("eegnet", 8, 300, 2, 200.0), EEGNet)
    assert isinstance(build_baseline("shallow", 8, 300, 2, 200.0), ShallowConvNet)


def test_build_baseline_braindecode_eegnet_keeps_the_dense_max_norm(monkeypatch):
    models = fake_braindecode(monkeypatch)
    net = build_baseline("eegnet", 8, 300, 2, 200.0, n_outputs=1, implementation="braindecode", drop_prob=0.5)
    assert type(net) is models.EEGNet
    assert net.kwargs == dict(n_chans=8, n_outputs=1, n_times=300, sfreq=200.0, drop_prob=0.5,
                              final_layer_with_constraint=True, norm_rate=0.25, kernel_length=64)
    # an explicit choice wins
    net = build_baseline("eegnet", 8, 300, 2, 200.0, implementation="braindecode", final_layer_with_constraint=False)
    assert net.kwargs["final_layer_with_constraint"] is False
    shallow = build_baseline("shallow", 22, 1000, 4, 250.0, implementation="braindecode")
    assert type(shallow) is models.ShallowFBCSPNet
    assert shallow.kwargs == dict(n_chans=22, n_outputs=4, n_times=1000, sfreq=250.0, final_conv_length="auto")


def test_build_baseline_braindecode_0_8(monkeypatch):
    """0.8: log-softmax switched off; its EEGNetv4 cannot take the dense max-norm, so it is refused."""
    models = fake_braindecode(monkeypatch, old=True)
    with pytest.raises(ConfigError, match=r"EEGNetv4 has no final_layer_with_constraint.*max-norm 0\.25.*"
                                          r"implementation='neurorvq'"):
        build_baseline("eegnet", 8, 300, 2, 200.0, implementation="braindecode")
    shallow = build_baseline("shallow", 22, 1000, 4, 250.0, implementation="braindecode")
    assert type(shallow) is models.ShallowFBCSPNet
    assert shallow.kwargs["add_log_softmax"] is False and shallow.kwargs["final_conv_length"] == "auto"
