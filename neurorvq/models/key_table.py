"""An official checkpoint layout <-> ours, as one table of key templates (the LaBraM loaders' shared machinery).

A :class:`KeyTable` holds rules ``(official template, our template, to ours, to official)``: templates name fields
in braces (``encoder.blocks.{i}.{rest}``) whose patterns :attr:`KeyTable.fields` gives; ``{s1}`` (an official
1-based index) becomes ``{s}`` (ours, 0-based) and back; a field named ``P`` is a prefix matched on load and written
back as the ``prefix`` given on export (LaBraM's ``student.``). The converters change shapes (``None``: unchanged).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from neurorvq.errors import CheckpointError

Convert = Callable[[torch.Tensor], torch.Tensor] | None


def flat_table(t: torch.Tensor) -> torch.Tensor:
    """An official ``[1, R, D]`` embedding table as ours, ``[R, D]``."""
    return t.reshape(t.shape[-2], t.shape[-1])


def batched_table(t: torch.Tensor) -> torch.Tensor:
    """Our ``[R, D]`` embedding table as the official ``[1, R, D]``."""
    return t.reshape(1, *t.shape)


def count_indices(state: Mapping[str, Any], pattern: str) -> int:
    """How many distinct values the first group of ``pattern`` takes over the keys of ``state`` (e.g. blocks)."""
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.match(k))})


@dataclass(frozen=True)
class KeyTable:
    """The rules of one official layout; ``name`` is the layout in messages (``"official VQ-NSP"``)."""

    rules: tuple[tuple[str, str, Convert, Convert], ...]
    fields: Mapping[str, str]
    name: str
    _official: list = field(init=False, repr=False, compare=False)
    _ours: list = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_official", [(self._regex(o), ours, f) for o, ours, f, _ in self.rules])
        object.__setattr__(self, "_ours", [(self._regex(ours), o, b) for o, ours, _, b in self.rules])

    def _regex(self, template: str) -> re.Pattern[str]:
        out, pos = "", 0
        for m in re.finditer(r"\{(\w+)\}", template):
            name = m.group(1)
            group = self.fields[name] if name == "P" else f"(?P<{name}>{self.fields[name]})"
            out += re.escape(template[pos:m.start()]) + group
            pos = m.end()
        return re.compile(out + re.escape(template[pos:]) + r"\Z")

    def to_ours(self, official: Mapping[str, torch.Tensor], source: str,
                skip: Sequence[str] = ()) -> dict[str, torch.Tensor]:
        """``official`` under our key names (shapes converted); ``skip``: official keys to drop (dead tensors);
        keys outside the table are one error listing them."""
        out: dict[str, torch.Tensor] = {}
        unknown = []
        for key, tensor in official.items():
            if key in skip:
                continue
            for pattern, ours, convert in self._official:
                m = pattern.match(key)
                if m is None:
                    continue
                fields = dict(m.groupdict())
                if "s1" in fields:
                    fields["s"] = int(fields.pop("s1")) - 1
                out[ours.format(**fields)] = convert(tensor) if convert else tensor
                break
            else:
                unknown.append(key)
        if unknown:
            raise CheckpointError(f"{source}: keys outside the {self.name} layout: {unknown[:20]}"
                                  f"{' ...' if len(unknown) > 20 else ''}")
        return out

    def to_official(self, ours: Mapping[str, torch.Tensor], prefix: str = "", skip: Sequence[str] = (),
                    unmapped: str = "") -> dict[str, torch.Tensor]:
        """Inverse of :meth:`to_ours` (``{P}`` written as ``prefix``); ``skip``: our keys with no official
        counterpart; another unmapped key is an error (``unmapped`` says why it can happen)."""
        out: dict[str, torch.Tensor] = {}
        for key, tensor in ours.items():
            if key in skip:
                continue
            for pattern, official, convert in self._ours:
                m = pattern.match(key)
                if m is None:
                    continue
                fields = dict(m.groupdict())
                if "s" in fields:
                    fields["s1"] = int(fields.pop("s")) + 1
                out[official.replace("{P}", prefix).format(**fields)] = convert(tensor) if convert else tensor
                break
            else:
                raise CheckpointError(f"'{key}' has no {self.name} counterpart{f' ({unmapped})' if unmapped else ''}")
        return out


__all__ = ["KeyTable", "batched_table", "count_indices", "flat_table"]
