"""Checkpoints that survive faults: written complete or not at all, and resumed with the random state they left.

* :class:`AtomicCheckpointIO` (a Lightning ``CheckpointIO``) writes every checkpoint to ``<name>.tmp`` in the
  same folder, flushed to disk and renamed when complete (:func:`neurorvq.file_io.write_atomic`). Lightning's own
  ``TorchCheckpointIO`` also writes through a temporary file, but fsspec creates it in the system temporary
  folder, and the final move across file systems is a copy: a full disk then leaves a partial checkpoint under
  its final name. Here a failed write (``ENOSPC``) leaves no file under the final name and no temporary file, and
  fails with :class:`~neurorvq.file_io.FileWriteError` naming the path, the checkpoint's size and the free space;
  an unreadable checkpoint given to Lightning (``--ckpt_path``, ``trainer.test(ckpt_path=...)``) fails with a
  :class:`~neurorvq.errors.CheckpointError` naming it.
* :class:`RandomStateCheckpoint` (a callback) stores the random generators' states (Python, NumPy, torch CPU and
  CUDA) in every checkpoint and restores them on resume. Lightning does not, so after ``seed_everything`` a
  resumed run would otherwise draw the random numbers of a fresh start: dead-code re-seeding, masking and dropout
  would differ from the uninterrupted run. (Data order does not come from these generators: the window samplers
  are seeded by ``(seed, epoch)``.)

:func:`fault_tolerant` installs both on a Trainer; ``neurorvq fit|validate|test|predict`` and ``neurorvq cv``
call it for every Trainer they build.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from neurorvq.file_io import CHECKPOINT_READ_ERRORS, TEMP_SUFFIX, checkpoint_read_error, write_atomic


def temporary_name(path: str | Path) -> Path:
    """Where :class:`AtomicCheckpointIO` writes ``path`` before renaming it: ``<name>.tmp`` beside it. A leftover
    one is an interrupted write (:func:`neurorvq.file_io.unfinished_write`); the next save of that name replaces
    it."""
    path = Path(path)
    return path.with_name(path.name + TEMP_SUFFIX)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are complete or absent (module docstring); remote paths
    (``s3://`` ...) go through Lightning's own saving."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()  # serialise first: a disk error is then an OSError from write(), not torch's RuntimeError
        torch.save(checkpoint, buffer)
        write_atomic(path, buffer.getbuffer(), tmp=temporary_name(path))

    def load_checkpoint(self, path: Any, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        try:
            return super().load_checkpoint(path, map_location, weights_only)
        except CHECKPOINT_READ_ERRORS as error:
            raise checkpoint_read_error(path, error) from None


class RandomStateCheckpoint(Callback):
    """Save the random generators' states with every checkpoint and restore them when training resumes from it
    (module docstring). Stored as tensors and plain numbers, so ``torch.load(weights_only=True)`` still reads the
    checkpoint. Under DDP every rank restores the saved (rank 0's) state, as after a seeded start."""

    def state_dict(self) -> dict[str, Any]:
        version, mt, gauss = random.getstate()
        kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        state: dict[str, Any] = {
            "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss_next": gauss},
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        py, npy = state_dict["python"], state_dict["numpy"]
        random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss_next"]))
        np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                             npy["cached_gaussian"]))
        torch.set_rng_state(state_dict["torch"].cpu())
        cuda = state_dict.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def fault_tolerant(trainer: Any) -> Any:
    """Install :class:`AtomicCheckpointIO` (unless the strategy has a checkpoint IO of its own: a user's plugin,
    or a strategy that saves shards) and :class:`RandomStateCheckpoint` (once) on ``trainer``; returns it."""
    strategy = trainer.strategy
    if type(strategy.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()
    if not any(isinstance(c, RandomStateCheckpoint) for c in trainer.callbacks):
        trainer.callbacks.append(RandomStateCheckpoint())
    return trainer


__all__ = ["AtomicCheckpointIO", "RandomStateCheckpoint", "fault_tolerant", "temporary_name"]
