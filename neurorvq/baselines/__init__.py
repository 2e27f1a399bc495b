"""Supervised baselines: EEGNet (Lawhern et al. 2018) and Shallow ConvNet (Schirrmeister et al. 2017).

``build_baseline`` builds this package's implementations by default (``implementation="neurorvq"``), or
braindecode's classes when asked explicitly (``"braindecode"``, ``pip install "neurorvq[braindecode]"``).
:func:`describe_baseline` records what was built and :func:`baseline_features` returns the input of the final
classification layer. See docs/baselines.md.
"""

from __future__ import annotations

import importlib
import inspect
import numbers
from typing import Any

import torch
from torch import nn

from neurorvq.baselines.eegnet import EEGNet, eegnet_sizes
from neurorvq.baselines.shallow_convnet import ShallowConvNet, shallow_convnet_sizes
from neurorvq.errors import ConfigError

__all__ = ["EEGNet", "ShallowConvNet", "build_baseline", "baseline_implementation", "baseline_name",
           "describe_baseline", "baseline_features", "braindecode_version", "eegnet_sizes", "shallow_convnet_sizes",
           "BASELINE_NAMES", "IMPLEMENTATIONS", "DEFAULT_IMPLEMENTATION"]

# accepted name -> canonical name
BASELINE_NAMES: dict[str, str] = {"eegnet": "eegnet", "shallow_convnet": "shallow_convnet",
                                  "shallow": "shallow_convnet"}
IMPLEMENTATIONS: tuple[str, ...] = ("neurorvq", "braindecode")
DEFAULT_IMPLEMENTATION = "neurorvq"
_OURS: dict[str, type[nn.Module]] = {"eegnet": EEGNet, "shallow_convnet": ShallowConvNet}
# braindecode class names, newest first (EEGNetv4 is the pre-1.0 name of EEGNet)
_BRAINDECODE_CLASSES: dict[str, tuple[str, ...]] = {"eegnet": ("EEGNet", "EEGNetv4"),
                                                    "shallow_convnet": ("ShallowFBCSPNet",)}
_INSTALL_HINT = 'pip install "neurorvq[braindecode]"'


def _import_braindecode_models() -> tuple[Any | None, str]:
    """``(braindecode.models, "")`` or ``(None, reason)``; any import failure counts as unavailable."""
    try:
        return importlib.import_module("braindecode.models"), ""
    except Exception as error:  # noqa: BLE001 - a broken install (e.g. a torchaudio/torch mismatch) is also "missing"
        return None, f"{type(error).__name__}: {error}"


def braindecode_version() -> str | None:
    """The installed braindecode's ``__version__``, or ``None`` when it does not import or has none."""
    try:
        return str(importlib.import_module("braindecode").__version__)
    except Exception:  # noqa: BLE001 - missing, broken or version-less: nothing to record
        return None


def baseline_implementation(implementation: str = DEFAULT_IMPLEMENTATION) -> str:
    """Check ``implementation`` ("neurorvq" or "braindecode", case-insensitive) and return it lower-case.

    Raises :class:`ConfigError` for an unknown value (the former ``"auto"`` included) or for "braindecode" when
    braindecode cannot be imported."""
    key = implementation.lower() if isinstance(implementation, str) else implementation
    if key == "auto":
        raise ConfigError("baseline implementation 'auto' was removed: it switched to braindecode's classes "
                          "whenever braindecode imported, which changes kernel sizes, BatchNorm momentum, "
                          "initialisation and EEGNet's dense max-norm with the environment; choose one of "
                          f"{', '.join(IMPLEMENTATIONS)} (docs/baselines.md)")
    if key not in IMPLEMENTATIONS:
        raise ConfigError(f"unknown baseline implementation {implementation!r}; choose one of "
                          f"{', '.join(IMPLEMENTATIONS)}")
    if key == "braindecode":
        models, reason = _import_braindecode_models()
        if models is None:
            raise ConfigError(f"implementation='braindecode' needs braindecode >= 0.8, which could not be "
                              f"imported ({reason}); install it with {_INSTALL_HINT}, or use "
                              "implementation='neurorvq'")
    return key


def baseline_name(name: str) -> str:
    """The canonical name ("eegnet" or "shallow_convnet") of an accepted baseline name (case-insensitive, "-" or
    "_"); :class:`ConfigError` for an unknown one."""
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if key not in BASELINE_NAMES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINE_NAMES)}")
    return BASELINE_NAMES[key]


def _build_braindecode(name: str, n_channels: int, n_times: int, n_outputs: int, sampling_rate: float,
                       options: dict[str, Any]) -> nn.Module:
    models, reason = _import_braindecode_models()
    if models is None:  # resolved a moment ago; only a concurrent uninstall gets here
        raise ConfigError(f"braindecode could not be imported ({reason}); install it with {_INSTALL_HINT}")
    candidates = _BRAINDECODE_CLASSES[name]
    cls = next((getattr(models, c) for c in candidates if hasattr(models, c)), None)
    if cls is None:
        raise ConfigError(f"this braindecode ({getattr(models, '__name__', 'braindecode.models')}) has none of "
                          f"{', '.join(candidates)}; neurorvq needs braindecode >= 0.8 ({_INSTALL_HINT})")
    if name == "shallow_convnet":
        options.setdefault("final_conv_length", "auto")  # braindecode 0.8 defaults to 30, too long for short windows
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # unreadable signature: pass what the current braindecode takes
        accepted = None
    if accepted is not None and "add_log_softmax" in accepted:  # 0.8 appends a log-softmax by default
        options.setdefault("add_log_softmax", False)
    if name == "eegnet":
        # braindecode's EEGNet defaults to an unconstrained conv classifier; the paper's dense layer has max-norm 0.25
        if accepted is None or "final_layer_with_constraint" in accepted:
            options.setdefault("final_layer_with_constraint", True)
        else:
            raise ConfigError(f"braindecode's {cls.__name__} has no final_layer_with_constraint option, so it cannot "
                              "keep EEGNet's max-norm 0.25 on the dense layer; install a newer braindecode "
                              f"({_INSTALL_HINT}) or use implementation='neurorvq'")
    arguments = dict(n_chans=n_channels, n_outputs=n_outputs, n_times=n_times, sfreq=sampling_rate, **options)
    network = cls(**arguments)
    network.neurorvq_arguments = _jsonable(arguments)  # what build_baseline passed, for describe_baseline
    return network


def _jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold turned into its repr (tuples into lists)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


# attributes braindecode's EEGNet(v4) and ShallowFBCSPNet keep of their resolved settings
_BRAINDECODE_ATTRIBUTES: tuple[str, ...] = (
    "F1", "D", "F2", "kernel_length", "depthwise_kernel_length", "pool1_kernel_size", "pool2_kernel_size",
    "third_kernel_size", "conv_spatial_max_norm", "norm_rate", "batch_norm_momentum", "batch_norm_eps",
    "n_filters_time", "filter_time_length", "n_filters_spat", "pool_time_length", "pool_time_stride",
    "batch_norm_alpha", "split_first_layer", "batch_norm", "pool_mode", "final_conv_length", "drop_prob",
    "add_log_softmax",
)


def _final_layer(model: nn.Module) -> nn.Module | None:
    """The last ``nn.Linear`` or conv registered in ``model`` (the classifier of a sequential network)."""
    last = None
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            last = module
    return last


def describe_baseline(model: nn.Module) -> dict[str, Any]:
    """What a :func:`build_baseline` network is, JSON-serialisable: ``class`` (module.qualname),
    ``n_parameters``, ``settings`` (ours: ``model.description()``, the resolved sizes and options; braindecode's:
    the resolved attributes it keeps, e.g. ``kernel_length``, ``norm_rate``), ``final_layer`` (class name of the
    classification layer) and, for braindecode's, ``arguments`` (what build_baseline passed)."""
    cls = type(model)
    own = getattr(model, "description", None)
    if isinstance(model, tuple(_OURS.values())) and callable(own):
        settings = own()
    else:
        settings = {key: getattr(model, key) for key in _BRAINDECODE_ATTRIBUTES if hasattr(model, key)}
    final = _final_layer(model)
    out = {"class": f"{cls.__module__}.{cls.__qualname__}",
           "n_parameters": sum(p.numel() for p in model.parameters()),
           "settings": settings,
           "final_layer": None if final is None else type(final).__name__}
    if hasattr(model, "neurorvq_arguments"):
        out["arguments"] = model.neurorvq_arguments
    return _jsonable(out)


def baseline_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``[B, F]``: the flattened input of ``model``'s final classification layer for ``x [B, C, T]``.

    Ours: ``model.features(x)``. Any other network (braindecode's): a forward pre-hook on its last registered
    ``nn.Linear``/conv records that layer's input during ``model(x)``. Dropout before that layer is active in
    train mode, so call it in eval mode for diagnostics."""
    if isinstance(model, tuple(_OURS.values())):
        return model.features(x)
    return _features_by_hook(model, x)


def _features_by_hook(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    final = _final_layer(model)
    if final is None:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear or conv layer to take the features from")
    captured: list[torch.Tensor] = []
    handle = final.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    if not captured:
        raise ConfigError(f"{type(model).__name__}'s last layer ({type(final).__name__}) did not run in its forward; "
                          "cannot take the classifier's input from it")
    return captured[-1].flatten(1)


def build_baseline(name: str, n_channels: int, n_times: int, n_classes: int, sampling_rate: float,
                   n_outputs: int | None = None, implementation: str = DEFAULT_IMPLEMENTATION,
                   **options: Any) -> nn.Module:
    """Build a supervised baseline mapping ``x [B, n_channels, n_times]`` to logits ``[B, n_outputs]``.

    Args:
        name: "eegnet", "shallow_convnet" or "shallow" (case-insensitive).
        n_channels, n_times: input channels and samples per window.
        n_classes: number of classes; ``n_outputs`` defaults to it (pass 1 for a single binary logit).
        sampling_rate: Hz; our implementations scale their temporal sizes with it (docs/baselines.md).
        implementation: "neurorvq" (default, this package) or "braindecode" (braindecode's ``EEGNet``/
            ``EEGNetv4`` or ``ShallowFBCSPNet`` with braindecode's own, unscaled sizes, BatchNorm and
            initialisation; EEGNet gets ``final_layer_with_constraint=True``, the paper's dense max-norm).
        **options: passed to the model class (e.g. ``dropout=0.5`` for ours, ``drop_prob=0.5`` for
            braindecode's).

    Raises:
        ConfigError: unknown name or implementation, "braindecode" requested but not importable, or a
            braindecode EEGNet that cannot take the dense max-norm.
    """
    canonical = baseline_name(name)
    resolved = baseline_implementation(implementation)
    n_outputs = n_classes if n_outputs is None else n_outputs
    if resolved == "braindecode":
        return _build_braindecode(canonical, n_channels, n_times, n_outputs, sampling_rate, dict(options))
    return _OURS[canonical](n_channels, n_times, n_classes, sampling_rate, n_outputs=n_outputs, **options)
