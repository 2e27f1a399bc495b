"""EEGNet (Lawhern et al. 2018), a compact supervised CNN baseline.

Reference: V. J. Lawhern, A. J. Solon, N. R. Waytowich, S. M. Gordon, C. P. Hung, B. J. Lance (2018).
"EEGNet: a compact convolutional neural network for EEG-based brain-computer interfaces".
J. Neural Eng. 15:056013. doi:10.1088/1741-2552/aace8c

The defaults are EEGNet-8,2 (F1=8, D=2, F2=16). The paper fixes its temporal sizes at 128 Hz; here they are
durations, converted to samples at ``sampling_rate`` (see :func:`eegnet_sizes`).
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from neurorvq.errors import ConfigError, InputError

# Keras BatchNormalization epsilon (the paper's implementation). Its momentum 0.99 (PyTorch 0.01) is available as
# bn_momentum=0.01 but is not the default: on small data sets a few hundred steps leave the running statistics far
# from the data's (measured: EEGNet on 176 armband windows, 150 steps, predicted one class in eval mode while the
# training loss fell; with 0.1 it did not), so the default is PyTorch's 0.1.
BN_EPS = 1e-3
BN_MOMENTUM = 0.1


def seconds_to_samples(seconds: float, sampling_rate: float) -> int:
    """Round ``seconds * sampling_rate`` half up, at least 1 sample."""
    return max(1, math.floor(seconds * sampling_rate + 0.5))


def check_shape_args(model: str, n_channels: int, n_times: int, n_outputs: int, sampling_rate: float) -> None:
    """Raise :class:`ConfigError` for a non-positive size or sampling rate."""
    for field, value in (("n_channels", n_channels), ("n_times", n_times), ("n_outputs", n_outputs)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{model}: {field} must be a positive int, got {value!r}")
    if not isinstance(sampling_rate, numbers.Real) or not sampling_rate > 0:
        raise ConfigError(f"{model}: sampling_rate must be > 0 Hz, got {sampling_rate!r}")


def check_input(model: str, x: torch.Tensor, n_channels: int, n_times: int) -> None:
    """Raise :class:`InputError` unless ``x`` is ``[batch, n_channels, n_times]``."""
    if x.ndim != 3 or x.shape[1] != n_channels or x.shape[2] != n_times:
        raise InputError(f"{model} was built for input [batch, {n_channels}, {n_times}] "
                         f"(channels, samples), got {list(x.shape)}")


class MaxNormConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose forward uses ``torch.renorm(weight, 2, 0, max_norm)``: each output filter's
    weights have L2 norm <= ``max_norm``. :meth:`apply_constraint` projects the stored weight in place."""

    def __init__(self, *args, max_norm: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_norm = float(max_norm)

    def constrained_weight(self) -> torch.Tensor:
        return torch.renorm(self.weight, p=2, dim=0, maxnorm=self.max_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.constrained_weight(), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    @torch.no_grad()
    def apply_constraint(self) -> None:
        self.weight.copy_(self.constrained_weight())


class MaxNormLinear(nn.Linear):
    """``nn.Linear`` whose forward uses weights renormed so each output unit's weight row has L2 norm
    <= ``max_norm``. :meth:`apply_constraint` projects the stored weight in place."""

    def __init__(self, in_features: int, out_features: int, *, max_norm: float, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.max_norm = float(max_norm)

    def constrained_weight(self) -> torch.Tensor:
        return torch.renorm(self.weight, p=2, dim=0, maxnorm=self.max_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.constrained_weight(), self.bias)

    @torch.no_grad()
    def apply_constraint(self) -> None:
        self.weight.copy_(self.constrained_weight())


def same_padding_sizes(kernel: int) -> tuple[int, int]:
    """``(left, right)`` zero samples that keep the length for a stride-1 kernel of ``kernel`` samples, as
    Keras/TensorFlow 'same': ``left = (kernel - 1) // 2``, ``right = kernel // 2``, so the extra sample of
    an even kernel goes on the right (64 -> 31, 32). Output sample ``t`` then sees inputs
    ``t - left .. t + right``."""
    left = (kernel - 1) // 2
    return left, kernel - 1 - left


def same_padding(kernel: int) -> nn.ZeroPad2d:
    """Zero padding along time of :func:`same_padding_sizes` (Keras 'same')."""
    left, right = same_padding_sizes(kernel)
    return nn.ZeroPad2d((left, right, 0, 0))


def glorot_bound(fan_in: int, fan_out: int) -> float:
    """Half-width of the Glorot (Xavier) uniform distribution: ``sqrt(6 / (fan_in + fan_out))``."""
    return math.sqrt(6.0 / (fan_in + fan_out))


def keras_glorot_fans(conv: nn.Conv2d) -> tuple[int, int]:
    """``(fan_in, fan_out)`` that Keras's ``glorot_uniform`` uses for the kernel of the layer ``conv`` stands for.

    For a depthwise conv (``groups == in_channels > 1``, Keras ``DepthwiseConv2D`` or the depthwise half of
    ``SeparableConv2D``) Keras stores the kernel as ``(kh, kw, in_channels, depth_multiplier)``, so
    ``fan_in = in_channels * kh * kw`` and ``fan_out = depth_multiplier * kh * kw``; PyTorch's
    ``xavier_uniform_`` on the ``[in_channels * multiplier, 1, kh, kw]`` weight uses ``1 * kh * kw`` and
    ``in_channels * multiplier * kh * kw`` instead. The sums agree when the multiplier is 1 and differ
    otherwise (EEGNet's spatial conv, D = 2: ``(F1 + D) * C`` in Keras against ``(1 + F1 * D) * C``).
    Any other conv: PyTorch's fans, which equal Keras's for ``groups == 1``.
    """
    receptive_field = math.prod(conv.kernel_size)
    if conv.groups > 1 and conv.groups == conv.in_channels:
        return conv.in_channels * receptive_field, (conv.out_channels // conv.groups) * receptive_field
    return (conv.in_channels // conv.groups) * receptive_field, conv.out_channels * receptive_field


@torch.no_grad()
def glorot_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """Fill ``weight`` from U(-b, b), ``b = glorot_bound(fan_in, fan_out)``."""
    bound = glorot_bound(fan_in, fan_out)
    return weight.uniform_(-bound, bound)


def eegnet_sizes(sampling_rate: float) -> dict[str, int]:
    """Temporal sizes of EEGNet at ``sampling_rate`` (Hz), from the paper's values at 128 Hz:

    - ``temporal_kernel``: 0.5 s of input samples (64 at 128 Hz);
    - ``pool1``: 1/32 s of input samples (4 at 128 Hz), giving a pooled rate of ``sampling_rate / pool1``;
    - ``separable_kernel``: 0.5 s at the pooled rate (16 at 128 Hz);
    - ``pool2``: 0.25 s at the pooled rate (8 at 128 Hz).

    E.g. 200 Hz -> 100, 6, 17, 8; 250 Hz -> 125, 8, 16, 8.
    """
    pool1 = seconds_to_samples(1 / 32, sampling_rate)
    pooled_rate = sampling_rate / pool1
    return {
        "temporal_kernel": seconds_to_samples(0.5, sampling_rate),
        "pool1": pool1,
        "separable_kernel": seconds_to_samples(0.5, pooled_rate),
        "pool2": seconds_to_samples(0.25, pooled_rate),
    }


class EEGNet(nn.Module):
    """EEGNet-F1,D (Lawhern et al. 2018, J. Neural Eng. 15:056013; default EEGNet-8,2).

    Layers, for input ``[B, C, T]`` (``C`` channels, ``T`` samples at ``sampling_rate`` Hz):

    1. temporal conv, F1 filters of ``temporal_kernel`` samples, 'same' padding, no bias -> ``[B, F1, C, T]``;
       BatchNorm;
    2. depthwise spatial conv over all C channels, D filters per temporal filter, no bias, each filter's
       weights with L2 norm <= ``depthwise_max_norm`` (1) -> ``[B, F1*D, 1, T]``; BatchNorm; ELU;
       average pool ``pool1``; dropout -> ``[B, F1*D, 1, T // pool1]``;
    3. separable conv: depthwise conv of ``separable_kernel`` samples ('same') then pointwise conv to F2,
       no bias -> ``[B, F2, 1, T1]``; BatchNorm; ELU; average pool ``pool2``; dropout
       -> ``[B, F2, 1, T1 // pool2]``;
    4. flatten, dense layer with each output unit's weights of L2 norm <= ``dense_max_norm`` (0.25)
       -> logits ``[B, n_outputs]`` (no softmax).

    Temporal sizes scale with ``sampling_rate`` (:func:`eegnet_sizes`); each may be overridden in samples.
    If ``n_times < pool1 * pool2`` the pools are reduced (``pool2`` first) with a ``UserWarning`` so that
    at least one time step remains.

    Max-norm constraints: the constrained layers always compute with ``torch.renorm``-ed weights, so every
    forward respects the constraint and gradients flow through the renorm. The paper's Keras implementation
    instead projects the weights after each update; call :meth:`apply_constraints` after each optimizer step
    to get that behaviour exactly (the forward renorm is then the identity).

    BatchNorm uses the Keras epsilon 1e-3 and PyTorch's momentum 0.1 (``bn_momentum``; the Keras default is 0.01
    in PyTorch terms, see ``BN_MOMENTUM``). Initialisation as the paper's Keras code (:meth:`reset_parameters`):
    Glorot-uniform conv and dense weights with Keras's fans (:func:`keras_glorot_fans`), zero dense bias,
    BatchNorm weight 1 and bias 0.

    :meth:`features` returns the flattened input of the dense layer ``[B, n_features]`` (after the last
    dropout) and :meth:`classify` applies the dense layer to it: ``forward(x) == classify(features(x))``.

    Args:
        n_channels: C, number of input channels.
        n_times: T, samples per window.
        n_classes: number of classes.
        sampling_rate: Hz.
        n_outputs: logits per sample; default ``n_classes`` (pass 1 for a single binary logit).
        f1: temporal filters (F1). d: depth multiplier (D). f2: pointwise filters (F2), default ``f1 * d``.
        dropout: dropout probability (paper: 0.25 cross-subject, 0.5 within-subject).
        temporal_kernel, pool1, separable_kernel, pool2: sizes in samples, overriding :func:`eegnet_sizes`.
        depthwise_max_norm, dense_max_norm: max L2 norms of the constrained layers.
        bn_momentum: BatchNorm momentum in PyTorch terms (0.01 = the Keras default of the original code).
    """

    def __init__(self, n_channels: int, n_times: int, n_classes: int, sampling_rate: float, *,
                 n_outputs: int | None = None, f1: int = 8, d: int = 2, f2: int | None = None,
                 dropout: float = 0.25, temporal_kernel: int | None = None, pool1: int | None = None,
                 separable_kernel: int | None = None, pool2: int | None = None,
                 depthwise_max_norm: float = 1.0, dense_max_norm: float = 0.25,
                 bn_momentum: float = BN_MOMENTUM) -> None:
        super().__init__()
        n_outputs = n_classes if n_outputs is None else n_outputs
        check_shape_args("EEGNet", n_channels, n_times, n_outputs, sampling_rate)
        n_channels, n_times, n_outputs = int(n_channels), int(n_times), int(n_outputs)
        f2 = f1 * d if f2 is None else f2
        sizes = eegnet_sizes(sampling_rate)
        given = {"temporal_kernel": temporal_kernel, "pool1": pool1, "separable_kernel": separable_kernel,
                 "pool2": pool2}
        for key, value in given.items():
            if value is not None:
                if value < 1:
                    raise ConfigError(f"EEGNet: {key} must be >= 1 sample, got {value}")
                sizes[key] = int(value)
        p1, p2 = sizes["pool1"], sizes["pool2"]
        if n_times < p1 * p2:
            p1 = min(p1, n_times)
            p2 = min(p2, n_times // p1)
            warnings.warn(f"EEGNet: n_times={n_times} is shorter than pool1*pool2 = {sizes['pool1']}*"
                          f"{sizes['pool2']} samples; pools reduced to {p1} and {p2}", UserWarning, stacklevel=2)
        self.n_channels, self.n_times, self.n_outputs = n_channels, n_times, n_outputs
        self.sampling_rate = float(sampling_rate)
        self.f1, self.d, self.f2, self.dropout = int(f1), int(d), int(f2), float(dropout)
        self.depthwise_max_norm, self.dense_max_norm = float(depthwise_max_norm), float(dense_max_norm)
        self.bn_momentum = float(bn_momentum)
        self.temporal_kernel, self.separable_kernel = sizes["temporal_kernel"], sizes["separable_kernel"]
        self.pool1, self.pool2 = p1, p2
        self.n_features = f2 * ((n_times // p1) // p2)

        self.temporal = nn.Sequential(
            same_padding(self.temporal_kernel),
            nn.Conv2d(1, f1, (1, self.temporal_kernel), bias=False),
            nn.BatchNorm2d(f1, eps=BN_EPS, momentum=bn_momentum),
        )
        self.depthwise = MaxNormConv2d(f1, f1 * d, (n_channels, 1), groups=f1, bias=False,
                                       max_norm=depthwise_max_norm)
        self.spatial = nn.Sequential(
            nn.BatchNorm2d(f1 * d, eps=BN_EPS, momentum=bn_momentum),
            nn.ELU(),
            nn.AvgPool2d((1, p1)),
            nn.Dropout(dropout),
        )
        self.separable = nn.Sequential(
            same_padding(self.separable_kernel),
            nn.Conv2d(f1 * d, f1 * d, (1, self.separable_kernel), groups=f1 * d, bias=False),
            nn.Conv2d(f1 * d, f2, 1, bias=False),
            nn.BatchNorm2d(f2, eps=BN_EPS, momentum=bn_momentum),
            nn.ELU(),
            nn.AvgPool2d((1, p2)),
            nn.Dropout(dropout),
        )
        self.classifier = MaxNormLinear(self.n_features, n_outputs, max_norm=dense_max_norm)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as the paper's Keras code: every conv and the dense layer Glorot-uniform with Keras's fans
        (``glorot_uniform``, the Keras default; :func:`keras_glorot_fans`: the depthwise spatial conv's bound is
        ``sqrt(6 / ((F1 + D) * C))``, not PyTorch's ``sqrt(6 / ((1 + F1 * D) * C))``), the dense bias zero
        (Keras default), BatchNorm weight 1, bias 0 and running statistics reset."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                glorot_uniform_(module.weight, *keras_glorot_fans(module))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)  # Keras Dense: fan_in = in_features, fan_out = units
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Project the max-norm constrained weights in place (call after each optimizer step)."""
        self.depthwise.apply_constraint()
        self.classifier.apply_constraint()

    def description(self) -> dict:
        """The sizes and options this network was built with (after scaling to ``sampling_rate``, explicit
        overrides and any pool reduction for short windows), JSON-serialisable."""
        return {
            "f1": self.f1, "d": self.d, "f2": self.f2,
            "temporal_kernel": self.temporal_kernel,
            "temporal_padding": list(same_padding_sizes(self.temporal_kernel)),
            "pool1": self.pool1,
            "separable_kernel": self.separable_kernel,
            "separable_padding": list(same_padding_sizes(self.separable_kernel)),
            "pool2": self.pool2,
            "dropout": self.dropout,
            "depthwise_max_norm": self.depthwise_max_norm, "dense_max_norm": self.dense_max_norm,
            "bn_momentum": self.bn_momentum, "bn_eps": BN_EPS,
            "n_features": self.n_features,
        }

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, n_channels, n_times]`` -> ``[B, n_features]``, the flattened input of the dense layer
        (``F2 x T2`` feature maps, filter-major; after the last dropout, so use eval mode for diagnostics)."""
        check_input("EEGNet", x, self.n_channels, self.n_times)
        h = self.temporal(x.unsqueeze(1))
        h = self.spatial(self.depthwise(h))
        h = self.separable(h)
        return h.flatten(1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The dense layer: ``[B, n_features]`` (:meth:`features`) -> logits ``[B, n_outputs]``."""
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, n_channels, n_times]`` float -> logits ``[B, n_outputs]``."""
        return self.classify(self.features(x))
