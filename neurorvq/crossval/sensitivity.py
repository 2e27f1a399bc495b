"""Channel sensitivity: does a model care which signal sits under which electrode?

At test time the signal rows of every window are rolled by one (row c gets row c-1's signal) while the channel
names stay fixed, and the features entering the final classifier are compared:

- ``relative_change``: mean over windows of ``||f(rolled) - f(x)||``, divided by the mean distance of ``f(x)``
  to the mean feature of the test windows (the features' natural spread);
- ``changed_predictions``: the share of windows whose predicted class changes.

A model whose relative change is below :data:`BLIND_BELOW` is flagged "channel-blind": it would give the same
answer whichever electrode recorded which signal, which on fixed montages (EMG armbands, EEG motor tasks) throws
away the most informative part of the data.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch

BLIND_BELOW = 1e-3


def roll_rows(x: torch.Tensor | np.ndarray, shift: int = 1) -> torch.Tensor | np.ndarray:
    """``x [N, C, T]`` with its channel rows rolled by ``shift`` (names are not touched)."""
    if torch.is_tensor(x):
        return x.roll(shift, dims=1)
    return np.roll(x, shift, axis=1)


def channel_sensitivity(features: np.ndarray, rolled: np.ndarray, predictions: np.ndarray,
                        rolled_predictions: np.ndarray, num_channels: int) -> dict[str, Any]:
    """The diagnostic from features ``[N, F]`` of the windows and of their rolled copies, and the predicted
    classes ``[N]`` of both. With a single channel nothing can be rolled: the result says so."""
    features, rolled = np.asarray(features, np.float64), np.asarray(rolled, np.float64)
    if num_channels < 2:
        return {"relative_change": None, "changed_predictions": None, "channel_blind": None,
                "note": "one channel: nothing to roll"}
    spread = float(np.linalg.norm(features - features.mean(0), axis=1).mean())
    shift = float(np.linalg.norm(rolled - features, axis=1).mean())
    relative = shift / spread if spread > 0 else (0.0 if shift == 0 else float("inf"))
    changed = float(np.mean(np.asarray(predictions) != np.asarray(rolled_predictions)))
    return {"relative_change": relative, "changed_predictions": changed, "channel_blind": relative < BLIND_BELOW,
            "windows": int(features.shape[0])}


@torch.no_grad()
def task_sensitivity(task: Any, batches: Iterable[dict[str, torch.Tensor]],
                     device: torch.device | str | None = None) -> dict[str, Any]:
    """:func:`channel_sensitivity` of a Lightning classifier exposing ``features(batch)``, ``probabilities(logits)``
    and either ``classify(features)`` (logits from the features, one forward pass per view) or ``logits(batch)``,
    over ``batches`` (the test loader), on ``device`` (default: where the task is); the task is put in eval mode."""
    was_training = task.training
    if device is not None:
        task.to(device)
    task.eval()
    classify = getattr(task, "classify", None)
    collected: dict[str, list[np.ndarray]] = {"f": [], "g": [], "p": [], "q": []}
    channels = 0
    try:
        for batch in batches:
            batch = {k: v.to(task.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            channels = int(batch["signal"].shape[1])
            for names, view in (("fp", batch), ("gq", {**batch, "signal": roll_rows(batch["signal"])})):
                features = task.features(view)
                logits = classify(features) if callable(classify) else task.logits(view)
                collected[names[0]].append(features.float().cpu().numpy())
                collected[names[1]].append(task.probabilities(logits).argmax(-1).cpu().numpy())
    finally:
        task.train(was_training)
    if not collected["f"]:
        return {"relative_change": None, "changed_predictions": None, "channel_blind": None, "note": "no windows"}
    f, g, p, q = (np.concatenate(collected[k]) for k in "fgpq")
    return channel_sensitivity(f, g, p, q, channels)


def array_sensitivity(features: Callable[[np.ndarray], np.ndarray], classify: Callable[[np.ndarray], np.ndarray],
                      x: np.ndarray, computed: np.ndarray | None = None) -> dict[str, Any]:
    """:func:`channel_sensitivity` of a model given as ``features(x)`` and ``classify(features) -> classes`` over
    windows ``x [N, C, T]`` (the classical baselines and the linear probe); ``computed``: ``features(x)`` when
    already at hand."""
    f = features(x) if computed is None else computed
    g = features(roll_rows(x))
    return channel_sensitivity(f, g, classify(f), classify(g), int(x.shape[1]))


def sensitivity_cell(records: Iterable[dict[str, Any]]) -> str:
    """Table cell of a run: mean relative change and mean share of changed predictions over its folds and
    seeds, flagged "channel-blind" below :data:`BLIND_BELOW`."""
    values = [r.get("channel_sensitivity") or {} for r in records]
    rel = [v["relative_change"] for v in values if v.get("relative_change") is not None]
    changed = [v["changed_predictions"] for v in values if v.get("changed_predictions") is not None]
    if not rel:
        return "—"
    mean = float(np.mean(rel))
    cell = f"{mean:.3g} ({100 * float(np.mean(changed)):.0f}% changed)"
    return cell + (" channel-blind" if mean < BLIND_BELOW else "")


__all__ = ["BLIND_BELOW", "array_sensitivity", "channel_sensitivity", "roll_rows", "sensitivity_cell",
           "task_sensitivity"]
