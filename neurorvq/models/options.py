"""Splitting a model's keyword overrides into modality-spec fields and model options."""

from __future__ import annotations

from typing import Any, Mapping

from neurorvq.errors import ConfigError
from neurorvq.families.neurorvq_spec import NeuroRVQSpec, as_neurorvq_spec
from neurorvq.registry import ModalitySpec
from neurorvq.suggest import did_you_mean


def resolve_overrides(spec: ModalitySpec | NeuroRVQSpec | str, overrides: Mapping[str, Any],
                      defaults: Mapping[str, Any], what: str) -> tuple[NeuroRVQSpec, dict[str, Any]]:
    """``(the flat NeuroRVQ record of spec with its field overrides applied, defaults updated with the option
    overrides)``; a modality contributes its NeuroRVQ default architecture.

    A key that is neither a spec field nor one of ``defaults`` raises :class:`ConfigError` listing both sets.
    """
    base = as_neurorvq_spec(spec)
    fields = set(base.to_dict())
    unknown = sorted(set(overrides) - fields - set(defaults))
    if unknown:
        hints = "".join(f" {u!r}{did_you_mean(u, fields | set(defaults))}" for u in unknown)
        raise ConfigError(f"unknown {what} override(s):{hints} (valid: model options {sorted(defaults)} and spec "
                          f"fields {sorted(fields)})")
    spec_changes = {k: v for k, v in overrides.items() if k in fields and k not in defaults}
    options = {**defaults, **{k: v for k, v in overrides.items() if k in defaults}}
    return (base.replace(**spec_changes) if spec_changes else base), options
