"""Supervised baselines: EEGNet (Lawhern et al. 2018) and Shallow ConvNet (Schirrmeister et al. 2017).

``build_baseline`` builds either from this package (``implementation="neurorvq"``) or from braindecode
(``"braindecode"``, ``pip install "neurorvq[braindecode]"``); ``"auto"`` takes braindecode when it imports.
See docs/baselines.md.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from torch import nn

from neurorvq.baselines.eegnet import EEGNet, eegnet_sizes
from neurorvq.baselines.shallow_convnet import ShallowConvNet, shallow_convnet_sizes
from neurorvq.errors import ConfigError

__all__ = ["EEGNet", "ShallowConvNet", "build_baseline", "baseline_implementation", "eegnet_sizes",
           "shallow_convnet_sizes", "BASELINE_NAMES", "IMPLEMENTATIONS"]

# accepted name -> canonical name
BASELINE_NAMES: dict[str, str] = {"eegnet": "eegnet", "shallow_convnet": "shallow_convnet",
                                  "shallow": "shallow_convnet"}
IMPLEMENTATIONS: tuple[str, ...] = ("auto", "neurorvq", "braindecode")
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


def baseline_implementation(implementation: str = "auto") -> str:
    """Resolve ``implementation`` ("auto", "neurorvq" or "braindecode") to the one ``build_baseline`` uses:
    "neurorvq" or "braindecode". Raises :class:`ConfigError` for an unknown value or for "braindecode"
    when braindecode cannot be imported."""
    key = implementation.lower() if isinstance(implementation, str) else implementation
    if key not in IMPLEMENTATIONS:
        raise ConfigError(f"unknown baseline implementation {implementation!r}; choose one of "
                          f"{', '.join(IMPLEMENTATIONS)}")
    if key == "neurorvq":
        return "neurorvq"
    models, reason = _import_braindecode_models()
    if models is not None:
        return "braindecode"
    if key == "braindecode":
        raise ConfigError(f"implementation='braindecode' needs braindecode >= 0.8, which could not be imported "
                          f"({reason}); install it with {_INSTALL_HINT}, or use implementation='neurorvq'")
    return "neurorvq"


def _canonical_name(name: str) -> str:
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
    except (TypeError, ValueError):
        accepted = {}
    if "add_log_softmax" in accepted:  # braindecode 0.8 appends a log-softmax by default; we want logits
        options.setdefault("add_log_softmax", False)
    return cls(n_chans=n_channels, n_outputs=n_outputs, n_times=n_times, sfreq=sampling_rate, **options)


def build_baseline(name: str, n_channels: int, n_times: int, n_classes: int, sampling_rate: float,
                   n_outputs: int | None = None, implementation: str = "auto", **options: Any) -> nn.Module:
    """Build a supervised baseline mapping ``x [B, n_channels, n_times]`` to logits ``[B, n_outputs]``.

    Args:
        name: "eegnet", "shallow_convnet" or "shallow" (case-insensitive).
        n_channels, n_times: input channels and samples per window.
        n_classes: number of classes; ``n_outputs`` defaults to it (pass 1 for a single binary logit).
        sampling_rate: Hz; our implementations scale their temporal sizes with it (docs/baselines.md).
        implementation: "neurorvq" (this package), "braindecode" (braindecode's ``EEGNet``/``EEGNetv4`` or
            ``ShallowFBCSPNet``, with braindecode's own, unscaled defaults) or "auto" (braindecode if it
            imports, else ours). :func:`baseline_implementation` tells which one "auto" picks.
        **options: passed to the model class (e.g. ``dropout=0.5`` for ours, ``drop_prob=0.5`` for
            braindecode's).

    Raises:
        ConfigError: unknown name or implementation, or "braindecode" requested but not importable.
    """
    canonical = _canonical_name(name)
    resolved = baseline_implementation(implementation)
    n_outputs = n_classes if n_outputs is None else n_outputs
    if resolved == "braindecode":
        return _build_braindecode(canonical, n_channels, n_times, n_outputs, sampling_rate, dict(options))
    return _OURS[canonical](n_channels, n_times, n_classes, sampling_rate, n_outputs=n_outputs, **options)
