"""Splitting a model's keyword overrides into modality-spec fields and model options."""

from __future__ import annotations

from typing import Any, Mapping

from neurorvq.errors import ConfigError
from neurorvq.registry import ModalitySpec, get_modality


def resolve_overrides(spec: ModalitySpec | str, overrides: Mapping[str, Any], defaults: Mapping[str, Any],
                      what: str) -> tuple[ModalitySpec, dict[str, Any]]:
    """``(spec with its field overrides applied, defaults updated with the option overrides)``.

    A key that is neither a spec field nor one of ``defaults`` raises :class:`ConfigError` listing both sets.
    """
    base = get_modality(spec)
    fields = set(base.to_dict())
    unknown = sorted(set(overrides) - fields - set(defaults))
    if unknown:
        raise ConfigError(f"unknown {what} override(s) {unknown}; valid: spec fields {sorted(fields)} and model "
                          f"options {sorted(defaults)}")
    spec_changes = {k: v for k, v in overrides.items() if k in fields and k not in defaults}
    options = {**defaults, **{k: v for k, v in overrides.items() if k in defaults}}
    return (base.replace(**spec_changes) if spec_changes else base), options
