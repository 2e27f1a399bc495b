"""Training seeds and the per-fold selection grid of ``neurorvq cv``.

``--seeds 0 1 2`` trains every fold once per seed (``seed_everything`` and the batch order), on fixed folds.
``--grid "model.init_args.lr=[1e-3, 3e-4, 1e-4]"`` gives a model up to :data:`MAX_SETTINGS` settings (the
product of every ``--grid`` key's values); in each fold every setting is trained and the one with the best
validation metric (validation groups of the training side) is tested: the test fold never takes part in the
choice. Every model of a comparison should get the same budget.
"""

from __future__ import annotations

import itertools
from typing import Sequence

from neurorvq.baselines.logistic import MAX_SETTINGS
from neurorvq.errors import ConfigError


def check_seeds(seeds: Sequence[int] | None) -> list[int] | None:
    """The training seeds, or ``None`` (one run per fold with the recipe's ``seed_everything``)."""
    if seeds is None:
        return None
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("--seeds is empty; give one or more training seeds, e.g. --seeds 0 1 2")
    negative = [s for s in seeds if s < 0]
    if negative:
        raise ConfigError(f"--seeds has negative values {negative}; seeds must be >= 0")
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicates:
        raise ConfigError(f"--seeds repeats {duplicates}; each seed must appear once (a repeated seed gives the "
                          "same run twice on CPU and would shrink the interval for nothing)")
    return seeds


def grid_settings(grid: Sequence[str] | None) -> list[list[str]]:
    """The LightningCLI overrides of every setting: ``["--model.init_args.lr=0.001", ...]`` per setting, the
    product of the keys' values in order; ``[[]]`` without a grid. At most :data:`MAX_SETTINGS` settings."""
    import yaml

    if not grid:
        return [[]]
    keys, values = [], []
    for item in grid:
        key, sep, text = str(item).partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key:
            raise ConfigError(f"--grid {item!r}: write KEY=[V1, V2, ...], e.g. \"model.init_args.lr=[1e-3, 3e-4]\"")
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"--grid {item!r}: the values are not a YAML list ({error})") from error
        if not isinstance(parsed, list) or not parsed:
            raise ConfigError(f"--grid {item!r}: the values must be a non-empty YAML list, e.g. {key}=[1e-3, 3e-4]")
        if key in keys:
            raise ConfigError(f"--grid names {key!r} twice; give all its values in one list")
        keys.append(key)
        values.append(parsed)
    settings = [[f"--{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                 for k, v in zip(keys, combo)] for combo in itertools.product(*values)]
    if len(settings) > MAX_SETTINGS:
        raise ConfigError(f"--grid gives {len(settings)} settings; at most {MAX_SETTINGS} per model (every model "
                          "of a comparison gets the same selection budget)")
    return settings


__all__ = ["check_seeds", "grid_settings"]
