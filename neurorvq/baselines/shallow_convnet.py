"""Shallow ConvNet (Schirrmeister et al. 2017), a supervised CNN baseline modelled on filter-bank CSP.

Reference: R. T. Schirrmeister, J. T. Springenberg, L. D. J. Fiederer, M. Glasstetter, K. Eggensperger,
M. Tangermann, F. Hutter, W. Burgard, T. Ball (2017). "Deep learning with convolutional neural networks for
EEG decoding and visualization". Hum. Brain Mapp. 38:5391-5420. doi:10.1002/hbm.23730

The paper fixes its temporal sizes at 250 Hz; here they are durations, converted to samples at
``sampling_rate`` (see :func:`shallow_convnet_sizes`).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from neurorvq.baselines.eegnet import check_input, check_shape_args, glorot_uniform_, seconds_to_samples
from neurorvq.errors import ConfigError


def shallow_convnet_sizes(sampling_rate: float) -> dict[str, int]:
    """Temporal sizes of the Shallow ConvNet at ``sampling_rate`` (Hz), from the paper's values at 250 Hz:

    - ``temporal_kernel``: 0.1 s (25 at 250 Hz);
    - ``pool``: 0.3 s (75 at 250 Hz);
    - ``pool_stride``: 0.06 s (15 at 250 Hz).

    E.g. 200 Hz -> 20, 60, 12; 128 Hz -> 13, 38, 8.
    """
    return {
        "temporal_kernel": seconds_to_samples(0.1, sampling_rate),
        "pool": seconds_to_samples(0.3, sampling_rate),
        "pool_stride": seconds_to_samples(0.06, sampling_rate),
    }


class ShallowConvNet(nn.Module):
    """Shallow ConvNet (Schirrmeister et al. 2017, Hum. Brain Mapp. 38:5391).

    Layers, for input ``[B, C, T]`` (``C`` channels, ``T`` samples at ``sampling_rate`` Hz):

    1. temporal conv, ``n_filters`` (40) filters of ``temporal_kernel`` samples, no padding
       -> ``[B, 40, C, T - k + 1]``;
    2. spatial conv, ``n_spatial_filters`` (40) filters across all C channels and temporal filters
       -> ``[B, 40, 1, L]``; BatchNorm;
    3. square; mean pool ``pool`` with stride ``pool_stride`` -> ``[B, 40, 1, P]``; ``log(max(., log_eps))``;
       dropout;
    4. flatten, linear classifier -> logits ``[B, n_outputs]`` (no softmax).

    Convs have no bias (the BatchNorm after the spatial conv cancels any). Temporal sizes scale with
    ``sampling_rate`` (:func:`shallow_convnet_sizes`); each may be overridden in samples. If the input is
    shorter than the temporal kernel a :class:`ConfigError` is raised; if the conv output ``L`` is shorter
    than the pool, the pool is reduced to ``L`` (one pooled step) with a ``UserWarning``.

    The paper uses no weight-norm constraint; :meth:`apply_constraints` exists for a uniform interface and
    does nothing. Initialisation as the paper's code (braindecode's ``ShallowFBCSPNet``,
    :meth:`reset_parameters`): Glorot-uniform weights, zero classifier bias, BatchNorm weight 1 and bias 0.

    :meth:`features` returns the flattened input of the classifier ``[B, n_features]`` (after dropout) and
    :meth:`classify` applies the classifier to it: ``forward(x) == classify(features(x))``.

    Args:
        n_channels: C, number of input channels.
        n_times: T, samples per window.
        n_classes: number of classes.
        sampling_rate: Hz.
        n_outputs: logits per sample; default ``n_classes`` (pass 1 for a single binary logit).
        n_filters: temporal filters. n_spatial_filters: spatial filters.
        temporal_kernel, pool, pool_stride: sizes in samples, overriding :func:`shallow_convnet_sizes`.
        dropout: dropout probability before the classifier.
        log_eps: floor applied before the log (in squared signal units after BatchNorm).
    """

    def __init__(self, n_channels: int, n_times: int, n_classes: int, sampling_rate: float, *,
                 n_outputs: int | None = None, n_filters: int = 40, n_spatial_filters: int = 40,
                 temporal_kernel: int | None = None, pool: int | None = None, pool_stride: int | None = None,
                 dropout: float = 0.5, log_eps: float = 1e-6) -> None:
        super().__init__()
        n_outputs = n_classes if n_outputs is None else n_outputs
        check_shape_args("ShallowConvNet", n_channels, n_times, n_outputs, sampling_rate)
        n_channels, n_times, n_outputs = int(n_channels), int(n_times), int(n_outputs)
        sizes = shallow_convnet_sizes(sampling_rate)
        for key, value in (("temporal_kernel", temporal_kernel), ("pool", pool), ("pool_stride", pool_stride)):
            if value is not None:
                if value < 1:
                    raise ConfigError(f"ShallowConvNet: {key} must be >= 1 sample, got {value}")
                sizes[key] = int(value)
        kernel, pool_size, stride = sizes["temporal_kernel"], sizes["pool"], sizes["pool_stride"]
        if n_times < kernel:
            raise ConfigError(f"ShallowConvNet: n_times={n_times} is shorter than the temporal kernel "
                              f"({kernel} samples = 0.1 s at {sampling_rate:g} Hz); use longer windows or pass "
                              f"temporal_kernel=<= {n_times}")
        conv_length = n_times - kernel + 1
        if conv_length < pool_size:
            warnings.warn(f"ShallowConvNet: the temporal conv leaves {conv_length} samples, fewer than the pool "
                          f"({pool_size}); pool reduced to {conv_length}", UserWarning, stacklevel=2)
            pool_size = conv_length
        self.n_channels, self.n_times, self.n_outputs = n_channels, n_times, n_outputs
        self.sampling_rate = float(sampling_rate)
        self.temporal_kernel, self.pool, self.pool_stride = kernel, pool_size, stride
        self.n_filters, self.n_spatial_filters = n_filters, n_spatial_filters
        self.log_eps = float(log_eps)
        n_pooled = (conv_length - pool_size) // stride + 1
        self.n_features = n_spatial_filters * n_pooled

        self.conv_temporal = nn.Conv2d(1, n_filters, (1, kernel), bias=False)
        self.conv_spatial = nn.Conv2d(n_filters, n_spatial_filters, (n_channels, 1), bias=False)
        self.bn = nn.BatchNorm2d(n_spatial_filters)
        self.pooling = nn.AvgPool2d((1, pool_size), stride=(1, stride))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.n_features, n_outputs)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as the paper's code (braindecode's ``ShallowFBCSPNet``): Glorot-uniform conv weights, BatchNorm
        weight 1, bias 0, and a Glorot-uniform classifier with the fans of the paper's final layer, a conv of
        ``n_spatial_filters -> n_outputs`` channels over all ``P`` pooled steps: ``fan_in = n_spatial_filters * P``,
        ``fan_out = n_outputs * P`` (``nn.Linear``'s own would be ``fan_out = n_outputs``), bias 0."""
        for module in (self.conv_temporal, self.conv_spatial):
            nn.init.xavier_uniform_(module.weight)
        n_pooled = self.n_features // self.n_spatial_filters
        glorot_uniform_(self.classifier.weight, self.n_features, self.n_outputs * n_pooled)
        nn.init.zeros_(self.classifier.bias)
        self.bn.reset_parameters()

    def apply_constraints(self) -> None:
        """No weight constraints in this model; present so training loops can call it on any baseline."""

    def description(self) -> dict:
        """The sizes and options this network was built with (after scaling to ``sampling_rate``, explicit
        overrides and any pool reduction for short windows), JSON-serialisable."""
        return {
            "n_filters": self.n_filters, "n_spatial_filters": self.n_spatial_filters,
            "temporal_kernel": self.temporal_kernel, "pool": self.pool, "pool_stride": self.pool_stride,
            "dropout": float(self.dropout.p), "log_eps": self.log_eps,
            "bn_momentum": float(self.bn.momentum), "bn_eps": float(self.bn.eps),
            "n_features": self.n_features,
        }

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, n_channels, n_times]`` -> ``[B, n_features]``, the flattened input of the classifier
        (``n_spatial_filters x P`` log band powers, filter-major; after dropout, so use eval mode for
        diagnostics)."""
        check_input("ShallowConvNet", x, self.n_channels, self.n_times)
        h = self.bn(self.conv_spatial(self.conv_temporal(x.unsqueeze(1))))
        h = self.pooling(h.square())
        h = torch.log(h.clamp_min(self.log_eps))
        return self.dropout(h).flatten(1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The classifier: ``[B, n_features]`` (:meth:`features`) -> logits ``[B, n_outputs]``."""
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, n_channels, n_times]`` float -> logits ``[B, n_outputs]``."""
        return self.classify(self.features(x))
