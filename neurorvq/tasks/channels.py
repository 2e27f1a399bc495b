"""Data channel ids -> model rows, checked once when a task meets its DataModule (:mod:`neurorvq.compat`)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from neurorvq.compat import FIELDS, Signal, channel_rows, check_compatible


class ChannelRows:
    """Checks a DataModule against a model and translates the data's channel ids to the model's rows.

    ``ChannelRows.bind(datamodule, model, headline=...)`` raises :class:`~neurorvq.compat.IncompatibleSignal`
    naming every differing field, or returns the translation: ``None`` when the data's vocabulary is a prefix of
    the model's (every built-in case: ids pass through, no gather), else a table applied by :meth:`__call__`.
    """

    def __init__(self, rows: Sequence[int]) -> None:
        self._rows = torch.tensor(list(rows), dtype=torch.long)

    @classmethod
    def bind(cls, datamodule: Any, model: Any, *, headline: str,
             fields: Sequence[str] = FIELDS) -> "ChannelRows | None":
        """``None`` for a DataModule without a spec (nothing to check) or whose ids are the model's rows."""
        if datamodule is None or Signal.of(datamodule) is None:
            return None
        check_compatible(datamodule, model, headline=headline, fields=fields)
        rows = channel_rows(datamodule, model)
        return None if rows is None else cls(rows)

    @classmethod
    def for_task(cls, task: Any, model: Any, what: str) -> "ChannelRows | None":
        """:meth:`bind` for the DataModule of ``task``'s trainer (None without one); ``what`` names the model in
        the message (``"tokenizer"`` -> "the 'ecg' data does not fit the 'eeg' tokenizer (data vs tokenizer): ...")."""
        trainer = getattr(task, "_trainer", None)
        datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
        name = getattr(getattr(datamodule, "spec", None), "name", "?")
        short = "FM" if what == "foundation model" else what
        return cls.bind(datamodule, model, headline=f"the '{name}' data does not fit the '{model.contract.name}' "
                                                    f"{what} (data vs {short})")

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (any shape, data vocabulary) as model rows, on ``ids``' device."""
        if self._rows.device != ids.device:
            self._rows = self._rows.to(ids.device)
        return self._rows[ids]


def model_ids(rows: ChannelRows | None, ids: torch.Tensor) -> torch.Tensor:
    """``ids`` translated by ``rows`` (unchanged when ``rows`` is None)."""
    return ids if rows is None else rows(ids)
