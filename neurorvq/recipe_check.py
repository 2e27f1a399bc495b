"""Early, readable errors for recipe fields that do not exist (before LightningCLI parses the recipe)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Sequence

from neurorvq.errors import ConfigError
from neurorvq.file_io import read_yaml
from neurorvq.suggest import did_you_mean


def _init_params(class_path: str) -> list[str] | None:
    """Parameter names of ``class_path``'s ``__init__`` (None when it cannot be imported or its ``**kwargs`` cannot
    be resolved). A class that forwards ``**common`` to its base (the DataModules) gets the fields jsonargparse
    resolves through the ``super().__init__`` call: exactly what a recipe may give it."""
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return None  # LightningCLI reports an unknown class_path itself
    params = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return _resolved_params(cls)
    return [p.name for p in params if p.name != "self"]


def _resolved_params(cls: type) -> list[str] | None:
    """The fields jsonargparse gives ``cls`` (its ``**kwargs`` followed into the base class it forwards them to)."""
    from jsonargparse import ArgumentParser

    try:
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, "x")
        return list(vars(parser.get_defaults().x))
    except Exception:  # noqa: BLE001 - a class jsonargparse cannot read: LightningCLI reports it itself
        return None


def _options_defaults(class_path: str) -> dict[str, Any]:
    """``{parameter: default}`` for the parameters of ``class_path``'s ``__init__`` that take typed model options
    (:mod:`neurorvq.families.options`)."""
    from neurorvq.families.options import _Options

    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return {}
    return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
            if isinstance(p.default, _Options)}


def _check_options(class_path: str, init_args: dict[str, Any], dotted: list[tuple[str, str]]) -> None:
    """The fields given to typed model options (``tokenizer: {encoder_dept: 2}``) must be fields of the options
    class (``class_path`` or the default's): one line with the closest valid name, before LightningCLI's usage."""
    import yaml

    from neurorvq.families.options import _Options, check_fields, options_class

    for param, default in _options_defaults(class_path).items():
        value = init_args.get(param)
        given: dict[str, Any] = dict(value) if isinstance(value, dict) else {}
        for name, arg in dotted:
            parts = name.split(".")
            if parts[:3] != ["model", "init_args", param]:
                continue
            raw = arg.split("=", 1)[1]
            if len(parts) == 3:  # --model.init_args.tokenizer={encoder_depth: 2}
                parsed = yaml.safe_load(raw)
                given = dict(parsed) if isinstance(parsed, dict) else given
            elif parts[3] == "class_path":
                given["class_path"] = raw
            elif parts[3] == "init_args" and len(parts) == 5:
                given.setdefault("init_args", {})[parts[4]] = raw
            elif len(parts) == 4:  # --model.init_args.tokenizer.encoder_depth=2
                (given.setdefault("init_args", {}) if "class_path" in given else given)[parts[3]] = raw
        cls: type = type(default)
        fields = given
        if "class_path" in given:
            base = next(b for b in type(default).__mro__ if b.__name__ in ("TokenizerOptions", "FMOptions"))
            cls = options_class(str(given["class_path"]), base, f"model.init_args.{param}")
            fields = dict(given.get("init_args") or {})
        if issubclass(cls, _Options):
            check_fields(cls, fields, f"model.init_args.{param}")


def _collect(argv: Sequence[str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Merged ``model``/``data``/``trainer`` sections of the ``--config`` files and the dotted overrides."""

    merged: dict[str, Any] = {}
    dotted: list[tuple[str, str]] = []
    args = list(argv)
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        else:
            key, _, value = arg[2:].partition("=") if arg.startswith("--") and "=" in arg else ("", "", "")
            if key in ("model", "data") and value and not value.endswith((".yaml", ".yml", ".json")):
                # "--data=package.Class" swaps the class: the recipe's fields were for the old one
                merged[key] = {"class_path": value, "init_args": {}}
            elif key:
                # "--trainer.callbacks+=..." appends to a list (jsonargparse): the field is "callbacks"
                dotted.append((key.removesuffix("+"), arg))
            continue
        path = Path(value)
        if path.is_file():
            config = read_yaml(path) or {}
            for key in ("model", "data", "trainer"):
                if isinstance(config.get(key), dict):
                    merged.setdefault(key, {}).update(config[key])
    return merged, dotted


def check_recipe_fields(argv: Sequence[str]) -> None:
    """Raise :class:`ConfigError` naming an unknown ``model``/``data``/``trainer`` field and the valid ones."""
    merged, dotted = _collect(argv)
    sections = {}
    for key in ("model", "data"):
        section = merged.get(key) or {}
        class_path = section.get("class_path")
        if class_path:
            sections[key] = (class_path, set((section.get("init_args") or {}).keys()))
    sections["trainer"] = ("lightning.Trainer", set((merged.get("trainer") or {}).keys()))
    for name, arg in dotted:
        parts = name.split(".")
        if parts[0] in ("model", "data") and len(parts) >= 3 and parts[1] == "init_args" and parts[0] in sections:
            sections[parts[0]][1].add(parts[2])
        elif parts[0] == "trainer" and len(parts) >= 2:
            sections["trainer"][1].add(parts[1])
    if "model" in sections:
        _check_options(sections["model"][0], dict((merged.get("model") or {}).get("init_args") or {}), dotted)
    for key, (class_path, fields) in sections.items():
        valid = _init_params(class_path)
        if valid is None:
            continue
        unknown = sorted(fields - set(valid))
        if unknown:
            where = f"{key}.init_args" if key != "trainer" else "trainer"
            hints = [did_you_mean(u, valid) for u in unknown]
            named = "; ".join(f"'{where}.{u}'{hint.replace('; ', ': ', 1)}" for u, hint in zip(unknown, hints))
            listing = ("`neurorvq fit --help` lists every trainer field" if key == "trainer"
                       else f"valid: {sorted(valid)}")
            raise ConfigError(f"recipe field(s) not parameters of {class_path}: {named} ({listing})")
