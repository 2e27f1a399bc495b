"""The baselines' classifier-input hook (features / classify), their description, the Keras 'same' padding of
EEGNet, and the initialisation of a fresh network against the papers' implementations."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurorvq.baselines import (EEGNet, ShallowConvNet, _features_by_hook, baseline_features, build_baseline,
                                describe_baseline)
from neurorvq.baselines.eegnet import BN_EPS, keras_glorot_fans, same_padding_sizes
from neurorvq.errors import ConfigError



def fresh(cls, *args, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return cls(*args, **kwargs)


# ------------------------------------------------------------------------------------------- features / classify
@pytest.mark.parametrize("cls, n_features", [(EEGNet, 16 * ((300 // 6) // 8)),            # F2 x T2 = 16 x 6
                                             (ShallowConvNet, 40 * ((281 - 60) // 12 + 1))])  # 40 x 19
def test_features_shape_and_forward_is_classify_of_features(cls, n_features):
    model = fresh(cls, 8, 300, 2, 200.0, n_outputs=1)  # 8 channels x 1.5 s at 200 Hz
    x = torch.randn(5, 8, 300)
    model.eval()
    with torch.no_grad():
        features = model.features(x)
        assert features.shape == (5, n_features) and model.n_features == n_features
        assert torch.equal(model(x), model.classify(features))
        assert torch.equal(baseline_features(model, x), features)
    model.train()  # same dropout masks when the generator restarts: still exactly equal
    torch.manual_seed(1)
    logits = model(x)
    torch.manual_seed(1)
    assert torch.equal(logits, model.classify(model.features(x)))


@pytest.mark.parametrize("cls", [EEGNet, ShallowConvNet])
def test_forward_hook_on_the_last_layer_gives_the_same_features(cls):
    """The generic path (used for braindecode's networks) agrees with ours on ours."""
    model = fresh(cls, 4, 256, 3, 128.0).eval()
    x = torch.randn(3, 4, 256)
    with torch.no_grad():
        assert torch.equal(_features_by_hook(model, x), model.features(x))


def test_features_by_hook_on_a_sequential_network():
    net = nn.Sequential(nn.Conv1d(4, 6, 5), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 60, 2)).eval()
    x = torch.randn(2, 4, 64)
    expected = net[2](net[1](net[0](x)))
    assert torch.equal(baseline_features(net, x), expected)
    assert torch.equal(net[3](baseline_features(net, x)), net(x))
    with pytest.raises(ConfigError, match="no nn.Linear or conv layer"):
        baseline_features(nn.Sequential(nn.Flatten()), x)


def test_channel_roll_changes_the_features():
    """The diagnostic the hook is for: rolling the signal rows changes what reaches the classifier."""
    model = fresh(EEGNet, 6, 200, 2, 200.0).eval()
    x = torch.randn(4, 6, 200)
    with torch.no_grad():
        change = (model.features(x.roll(1, dims=1)) - model.features(x)).norm(dim=1)
    assert (change > 0).all()


# ------------------------------------------------------------------------------------------- description
def test_description_of_our_networks_is_json_and_resolved():
    eegnet = build_baseline("eegnet", 8, 300, 2, 200.0, n_outputs=1)
    d = describe_baseline(eegnet)
    json.dumps(d)
    assert d["class"] == "neurorvq.baselines.eegnet.EEGNet" and d["final_layer"] == "MaxNormLinear"
    assert d["n_parameters"] == sum(p.numel() for p in eegnet.parameters())
    assert d["settings"] == {"f1": 8, "d": 2, "f2": 16, "temporal_kernel": 100, "temporal_padding": [49, 50],
                             "pool1": 6, "separable_kernel": 17, "separable_padding": [8, 8], "pool2": 8,
                             "dropout": 0.25, "depthwise_max_norm": 1.0, "dense_max_norm": 0.25,
                             "bn_momentum": 0.1, "bn_eps": BN_EPS, "n_features": 96}
    shallow = describe_baseline(build_baseline("shallow", 22, 1000, 4, 250.0))
    json.dumps(shallow)
    assert shallow["settings"] == {"n_filters": 40, "n_spatial_filters": 40, "temporal_kernel": 25, "pool": 75,
                                   "pool_stride": 15, "dropout": 0.5, "log_eps": 1e-6, "bn_momentum": 0.1,
                                   "bn_eps": 1e-5, "n_features": 40 * 61}
    with pytest.warns(UserWarning):  # short window: the description shows the reduced pools
        assert describe_baseline(EEGNet(4, 20, 2, 128.0))["settings"]["pool2"] == 5


# ------------------------------------------------------------------------------------------- padding
@pytest.mark.parametrize("kernel, expected", [(64, (31, 32)), (100, (49, 50)), (125, (62, 62)), (16, (7, 8)),
                                              (1, (0, 0))])
def test_same_padding_is_keras_same(kernel, expected):
    assert same_padding_sizes(kernel) == expected


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("fs", [128.0, 200.0])  # even temporal kernels (64, 100)
def test_eegnet_temporal_conv_is_keras_same_for_even_kernels(fs):
    """TensorFlow's 'same' puts the extra sample on the right, as torch's padding='same' does."""
    model = fresh(EEGNet, 3, 256, 2, fs)
    assert model.temporal_kernel % 2 == 0
    conv = model.temporal[1]
    x = torch.randn(2, 1, 3, 256)
    with torch.no_grad():
        ours = conv(model.temporal[0](x))
        reference = F.conv2d(x, conv.weight, padding="same")
    assert ours.shape == (2, 8, 3, 256) and torch.equal(ours, reference)


# ------------------------------------------------------------------------------------------- initialisation
def assert_glorot(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
    """U(-b, b) with b = sqrt(6 / (fan_in + fan_out)): inside the bound, filling it, the uniform's spread."""
    bound = math.sqrt(6 / (fan_in + fan_out))
    w = weight.detach().flatten()
    assert w.abs().max() <= bound * (1 + 1e-6), (w.abs().max().item(), bound)
    if w.numel() >= 500:
        assert w.abs().max() >= 0.98 * bound, (w.abs().max().item(), bound)
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.08)
        assert abs(w.mean().item()) < 0.1 * bound


def assert_fresh_batchnorm(model: nn.Module) -> None:
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms
    for bn in norms:
        assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))


def test_eegnet_initialisation_is_keras_glorot_uniform():
    """The paper's Keras code: glorot_uniform kernels (Keras fans), zero dense bias, BatchNorm 1/0."""
    c, t, f1, d, f2, n_out = 64, 128, 8, 2, 16, 4
    model = fresh(EEGNet, c, t, n_out, 128.0)
    assert_glorot(model.temporal[1].weight, 64, f1 * 64)                # Conv2D (1, 64), 1 -> F1
    assert_glorot(model.depthwise.weight, f1 * c, d * c)                # DepthwiseConv2D (C, 1): (F1 + D) * C
    assert model.depthwise.weight.abs().max() > math.sqrt(6 / ((1 + f1 * d) * c))  # not torch's xavier fans
    assert_glorot(model.separable[1].weight, f1 * d * 16, 16)           # SeparableConv2D depthwise (1, 16)
    assert_glorot(model.separable[2].weight, f1 * d, f2)                # its pointwise 1x1
    assert_glorot(model.classifier.weight, model.n_features, n_out)     # Dense
    assert torch.equal(model.classifier.bias, torch.zeros(n_out))
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))  # use_bias=False
    assert_fresh_batchnorm(model)
    # the separable depthwise conv (multiplier 1) has the same fan sum in Keras and torch
    sep = model.separable[1]
    assert sum(keras_glorot_fans(sep)) == sum(nn.init._calculate_fan_in_and_fan_out(sep.weight))


def test_shallow_initialisation_is_the_papers():
    """braindecode's ShallowFBCSPNet (the paper's code): xavier_uniform, zero bias, BatchNorm 1/0; the classifier
    with the fans of its conv over all pooled steps."""
    c, n_out, pooled = 22, 4, 61
    model = fresh(ShallowConvNet, c, 1000, n_out, 250.0)
    assert_glorot(model.conv_temporal.weight, 25, 40 * 25)
    assert_glorot(model.conv_spatial.weight, 40 * c, 40 * c)
    assert_glorot(model.classifier.weight, 40 * pooled, n_out * pooled)
    assert model.classifier.weight.abs().max() <= math.sqrt(6 / (40 * pooled + n_out + 1e-9)) * 0.96  # not Linear's
    assert torch.equal(model.classifier.bias, torch.zeros(n_out))
    assert model.conv_temporal.bias is None and model.conv_spatial.bias is None
    assert_fresh_batchnorm(model)


@pytest.mark.parametrize("cls", [EEGNet, ShallowConvNet])
def test_reset_parameters_restores_the_initialisation(cls):
    model = fresh(cls, 8, 300, 3, 200.0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(7.0)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
    model.reset_parameters()
    assert_fresh_batchnorm(model)
    biases = [m.bias for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None]
    assert biases and all(torch.equal(b, torch.zeros_like(b)) for b in biases)
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(w.abs().max() < 1 for w in weights)
