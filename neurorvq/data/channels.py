"""Map a recording's channel names onto a modality's vocabulary.

Rules, in order, for each recording channel:

1. an explicit per-dataset choice (``explicit={"EEG Fpz-Cz": "fpz"}``), for derivations such as bipolar
   montages that correspond to an electrode only by a documented decision;
2. the cleaned name (lower case; file decorations removed: a leading signal type such as ``EEG ``/``ECG ``,
   a reference suffix such as ``-REF``/``-LE``/``-AR``/``-AVG``, BCI2000 trailing dots as in ``Fc5.``) if it is
   a vocabulary name;
3. an alias, only for names the vocabulary lacks (ECG ``MLII`` -> ``ii``). Names the vocabulary holds are
   never aliased: the EEG vocabulary has both ``t3`` and ``t7``, so neither is mapped onto the other;
4. otherwise the channel is dropped and reported with the reason, never silently mislabelled. A second
   channel mapping onto an already used name is dropped as a duplicate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from neurorvq.registry import ModalitySpec

# Aliases per modality: cleaned recording name -> vocabulary name (only used when the vocabulary lacks the name).
ALIASES: dict[str, dict[str, str]] = {
    "ecg": {"mlii": "ii", "mli": "i", "mliii": "iii", "d1": "i", "d2": "ii", "d3": "iii", "lead i": "i",
            "lead ii": "ii", "lead iii": "iii"},
    "eeg": {},
    "emg": {},
}

_TYPE_PREFIX = re.compile(r"^(eeg|ecg|ekg|emg|eog|ppg)[\s_:]+", re.IGNORECASE)
_REF_SUFFIX = re.compile(r"[-_ ](ref|le|ar|avg|average)$", re.IGNORECASE)


def clean_channel_name(name: str) -> str:
    """Lower-case ``name`` without file decorations: ``'EEG Fp1-REF'`` -> ``'fp1'``, ``'Fc5.'`` -> ``'fc5'``."""
    cleaned = name.strip()
    cleaned = _TYPE_PREFIX.sub("", cleaned)
    cleaned = cleaned.rstrip(".").strip()
    cleaned = _REF_SUFFIX.sub("", cleaned)
    return cleaned.strip().lower()


@dataclass
class ChannelMap:
    """Result of :func:`map_channels`.

    picks: indices into the recording's channel list, in recording order; names: their vocabulary names;
    dropped: recording name -> reason, for every channel not kept.
    """

    picks: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)


def map_channels(recording_names: Sequence[str], spec: ModalitySpec, *,
                 explicit: Mapping[str, str] | None = None,
                 aliases: Mapping[str, str] | None = None) -> ChannelMap:
    """Map ``recording_names`` onto ``spec.channels`` (see the module docstring for the rules).

    ``explicit`` keys are matched case-insensitively against the raw recording names; ``aliases`` default
    to :data:`ALIASES` of the modality.
    """
    vocabulary = set(spec.channels)
    explicit_map = {k.strip().lower(): v.lower() for k, v in (explicit or {}).items()}
    alias_map = dict(ALIASES.get(spec.name, {}) if aliases is None else aliases)
    result = ChannelMap()
    used: dict[str, str] = {}
    for index, raw_name in enumerate(recording_names):
        target = None
        if raw_name.strip().lower() in explicit_map:
            target = explicit_map[raw_name.strip().lower()]
            if target not in vocabulary:
                result.dropped[raw_name] = f"explicit choice '{target}' is not in the '{spec.name}' vocabulary"
                continue
        else:
            cleaned = clean_channel_name(raw_name)
            if cleaned in vocabulary:
                target = cleaned
            elif cleaned in alias_map and alias_map[cleaned] in vocabulary:
                target = alias_map[cleaned]
            else:
                close = spec.closest_channels(cleaned)
                hint = f" (closest: {', '.join(close)})" if close else ""
                result.dropped[raw_name] = f"'{cleaned}' is not in the '{spec.name}' vocabulary{hint}"
                continue
        if target in used:
            result.dropped[raw_name] = f"duplicate of '{used[target]}' (both map to '{target}')"
            continue
        used[target] = raw_name
        result.picks.append(index)
        result.names.append(target)
    return result
