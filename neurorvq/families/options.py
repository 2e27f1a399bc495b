"""Typed model options that recipes pick and LightningCLI checks: one class per family and model kind.

A task's ``tokenizer`` (``fm``, ``fm_overrides``) argument is typed by a plain base class, :class:`TokenizerOptions`
(:class:`FMOptions`), whose subclasses are frozen dataclasses, one per family (``NeuroRVQOptions``,
``ToyVQOptions``). LightningCLI then runs it in subclass mode:

- ``tokenizer: {encoder_depth: 2}`` (or ``{}``) sets fields of the default class (NeuroRVQ's);
- ``tokenizer: {class_path: neurorvq.families.toy.ToyVQOptions, init_args: {hidden: 32}}`` picks another family;
- ``--print_config`` lists every field with its default, and a misspelt field is refused before anything is built.

The base is a plain class on purpose: with a dataclass base, jsonargparse would ignore the subclasses. Fields left
``None`` take the modality's default architecture for the family. Python callers may pass a mapping instead of an
options object (:func:`coerce_options`); checkpoints store :meth:`~TokenizerOptions.as_hparams`, plain data.
"""

from __future__ import annotations

import dataclasses
from importlib import import_module
from typing import Any, ClassVar, Mapping

from neurorvq.errors import ConfigError
from neurorvq.file_io import json_ready
from neurorvq.suggest import did_you_mean


class _Options:
    family: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    def overrides(self) -> dict[str, Any]:
        """The fields that are set (not ``None``), as keyword arguments of the family's model class."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    def changes(self) -> dict[str, Any]:
        """The fields whose value differs from the class default (what a user set)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}

    def as_hparams(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}`` in plain data (lists, dicts): what checkpoints and hparams.yaml store."""
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}",
                "init_args": json_ready(dataclasses.asdict(self))}

    def model_class(self) -> type:
        from neurorvq.families import get_family

        family = get_family(self.family)
        return family.tokenizer_class() if self.kind == "tokenizer" else family.foundation_model_class()


class TokenizerOptions(_Options):
    """Base of the tokenizer options of every family (plain class: see the module docstring)."""

    kind: ClassVar[str] = "tokenizer"

    def build(self, modality: Any, **extra: Any) -> Any:
        """The family's tokenizer for ``modality`` with these options (and ``extra`` keyword arguments)."""
        return self.model_class()(modality, **{**self.overrides(), **extra})


class FMOptions(_Options):
    """Base of the foundation-model options of every family (plain class: see the module docstring)."""

    kind: ClassVar[str] = "foundation_model"

    def build(self, modality: Any, **extra: Any) -> Any:
        """The family's foundation model for ``modality`` with these options (and ``extra`` keyword arguments)."""
        return self.model_class()(modality, **{**self.overrides(), **extra})


def coerce_options(value: Any, default: _Options, what: str) -> _Options:
    """``value`` as an options object: ``None`` -> ``default``; an options object as it is; a mapping of the
    default class's fields, or ``{"class_path", "init_args"}`` naming another options class. Unknown fields raise
    :class:`ConfigError` (``"unknown tokenizer field(s) for NeuroRVQOptions: 'encoder_dept'; did you mean
    'encoder_depth'? ..."``)."""
    base = TokenizerOptions if isinstance(default, TokenizerOptions) else FMOptions
    if value is None:
        return default
    if isinstance(value, base):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} is a {type(value).__name__}; give a mapping of fields or a {base.__name__}")
    cls: type = type(default)
    fields = dict(value)
    if "class_path" in fields:
        cls = options_class(str(fields["class_path"]), base, what)
        fields = dict(fields.get("init_args") or {})
    check_fields(cls, fields, what)
    try:
        return cls(**fields)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: {exc}") from exc


def options_class(class_path: str, base: type, what: str) -> type:
    """The options class named by ``class_path`` (a subclass of ``base``); :class:`ConfigError` otherwise."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{what}: class_path '{class_path}' cannot be imported ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{what}: '{class_path}' is not a {base.__name__} subclass")
    return cls


def check_fields(cls: type, fields: Mapping[str, Any], what: str) -> None:
    """Raise :class:`ConfigError` naming the keys of ``fields`` that are not fields of the options class ``cls``."""
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        hints = "".join(f" '{u}'{did_you_mean(u, valid)}" for u in unknown)
        raise ConfigError(f"unknown {what} field(s) for {cls.__name__}:{hints} (valid: {valid})")


def refuse_unknown_fields(cls: type, data: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` (``unknown <Class> field(s) [...]; valid fields: [...]``) when ``data`` has keys
    that are not fields of the dataclass ``cls``: the check of a family config's ``from_dict``."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {known}")


__all__ = ["FMOptions", "TokenizerOptions", "check_fields", "coerce_options", "options_class", "refuse_unknown_fields"]
