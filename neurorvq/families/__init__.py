"""Tokenizer families: the architecture a checkpoint fixes, apart from the signal a modality describes.

A family (NeuroRVQ; the toy one-level VQ of ``docs/adding-a-family.md``; LaBraM's VQ-NSP; BrainRVQ's DD-RVQ) is
one :class:`Family` record: its name (stored in checkpoints), its config class (the architecture, validated against
a patch length; a modality may declare a default under ``families={name: config}``), and the import paths of its
tokenizer and foundation-model classes, which satisfy :mod:`neurorvq.tokenizers`' protocols. Records are
registered with :func:`register_family` (at import of the family's module, or through an entry point in the group
``neurorvq.families``) and looked up with :func:`get_family`. Importing this package imports no model code (and no
torch): classes are resolved when first asked for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import Any

from neurorvq.errors import ConfigError
from neurorvq.suggest import did_you_mean

ENTRY_POINT_GROUP = "neurorvq.families"
BUILTIN_FAMILIES = {"neurorvq": "neurorvq.families.neurorvq", "toy_vq": "neurorvq.families.toy",
                    "labram_vqnsp": "neurorvq.families.labram", "brainrvq": "neurorvq.families.brainrvq"}
"""Family name -> the module that registers it, imported on first look-up."""


@dataclass(frozen=True)
class Family:
    """One tokenizer family.

    name: lower-case key, stored in checkpoints and token files. config: the config class (frozen dataclass with
    ``validate(patch_length, where)``, ``to_dict``, ``from_dict``). tokenizer / foundation_model: ``"module:Class"``
    import paths of the model classes (``None``: the family has none). doc: one line for listings.
    """

    name: str
    config: type
    tokenizer: str | None = None
    foundation_model: str | None = None
    doc: str = ""

    def tokenizer_class(self) -> type:
        """The tokenizer class (imported now)."""
        return _resolve(self.name, "tokenizer", self.tokenizer)

    def foundation_model_class(self) -> type:
        """The foundation-model class (imported now)."""
        return _resolve(self.name, "foundation model", self.foundation_model)


_REGISTRY: dict[str, Family] = {}
_LOCK = threading.RLock()
_FAILED: dict[str, str] = {}


def register_family(family: Family, *, overwrite: bool = False) -> Family:
    """Add ``family`` under its name; a taken name raises :class:`ConfigError` unless ``overwrite``. Returns it."""
    if not isinstance(family, Family):
        raise ConfigError(f"register_family expects a Family, got {type(family).__name__}")
    if not family.name or family.name != family.name.lower():
        raise ConfigError(f"family name {family.name!r}: use a lower-case word such as 'toy_vq'")
    with _LOCK:
        existing = _REGISTRY.get(family.name)
        if existing is not None and existing != family and not overwrite:
            raise ConfigError(f"family '{family.name}' is already registered; choose another name or pass "
                              "overwrite=True to replace it")
        _REGISTRY[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The family registered as ``name`` (built-ins and entry points are imported on first look-up); an unknown
    name raises :class:`ConfigError` listing the known ones (and plug-ins that failed to load)."""
    key = str(name).strip().lower()
    with _LOCK:
        if key not in _REGISTRY and key in BUILTIN_FAMILIES:
            import_module(BUILTIN_FAMILIES[key])
        if key not in _REGISTRY:
            _load_entry_points()
        if key not in _REGISTRY:
            known = list_families()
            broken = "".join(f"; plug-in failure: {msg}" for msg in _FAILED.values())
            raise ConfigError(f"unknown tokenizer family '{name}'; known: {known}{did_you_mean(key, known)}. A new "
                              "family registers itself with neurorvq.families.register_family (docs/adding-a-family.md)"
                              f"{broken}")
        return _REGISTRY[key]


def list_families() -> list[str]:
    """Names of the built-in, registered and installed (entry point) families, sorted."""
    with _LOCK:
        names = set(_REGISTRY) | set(BUILTIN_FAMILIES)
        try:
            names |= {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
        except Exception:  # a broken distribution must not hide the others
            pass
        return sorted(names)


def _load_entry_points() -> None:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        try:
            value: Any = ep.load()
            family = value() if callable(value) and not isinstance(value, Family) else value
        except Exception as exc:  # a broken plug-in must say which one
            _FAILED[ep.name] = f"entry point '{ep.name} = {ep.value}' in group '{ENTRY_POINT_GROUP}': {exc}"
            continue
        if isinstance(family, Family):
            register_family(family)
        elif ep.name not in _REGISTRY:  # a module that registered itself on import is fine
            _FAILED[ep.name] = f"entry point '{ep.name} = {ep.value}' gave {type(family).__name__}, not a Family"


def _resolve(family: str, what: str, path: str | None) -> type:
    if not path:
        raise ConfigError(f"family '{family}' has no {what}")
    module, _, attribute = path.partition(":")
    try:
        return getattr(import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"family '{family}': its {what} '{path}' cannot be imported ({exc})") from exc


__all__ = ["BUILTIN_FAMILIES", "ENTRY_POINT_GROUP", "Family", "get_family", "list_families", "register_family"]
