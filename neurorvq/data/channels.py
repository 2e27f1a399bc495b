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

When nothing maps, :func:`no_channel_message` is the refusal: a few dropped names with their reasons, the count,
and the ``channel_map`` option that renames them (:mod:`neurorvq.data.channel_map`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from neurorvq.registry import ModalitySpec
from neurorvq.vocabulary import decode_channel_names

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


def map_channels(recording_names: Sequence[str | bytes], spec: ModalitySpec, *,
                 explicit: Mapping[str, str] | None = None,
                 aliases: Mapping[str, str] | None = None) -> ChannelMap:
    """Map ``recording_names`` onto ``spec.channels`` (see the module docstring for the rules).

    ``recording_names`` may come straight from a ``.mat``/HDF5 reader: bytes and numpy strings are decoded, a
    number is read as its text (:func:`~neurorvq.vocabulary.decode_channel_names`); ``dropped`` keys are the
    decoded names. ``explicit`` keys are matched case-insensitively against the raw recording names; ``aliases``
    default to the modality's (``spec.aliases``).
    """
    recording_names = [str(n) for n in decode_channel_names(recording_names, "recording channel names")]
    vocabulary = set(spec.channels)
    explicit_map = {k.strip().lower(): v.lower() for k, v in (explicit or {}).items()}
    alias_map = dict(getattr(spec, "aliases", {}) if aliases is None else aliases)
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


def describe_dropped(dropped: Mapping[str, str], examples: int = 5) -> str:
    """``'32 channels dropped, e.g. 'EEG 000' (reason), ... and 27 more'``: the first ``examples`` of
    ``dropped`` (recording name -> reason) and the count, instead of the whole dict."""
    shown = "; ".join(f"'{name}' ({why})" for name, why in list(dropped.items())[:examples])
    more = f"; and {len(dropped) - examples} more" if len(dropped) > examples else ""
    return f"{len(dropped)} channel{'s' if len(dropped) != 1 else ''} dropped, e.g. {shown}{more}"


def no_channel_message(spec: ModalitySpec, dropped: Mapping[str, str],
                       explicit: Mapping[str, str] | None = None) -> str:
    """The refusal of a recording none of whose channels maps onto ``spec``'s vocabulary: examples of the dropped
    channels (:func:`describe_dropped`) and how to rename them with ``channel_map`` (one line: the message is also
    quoted inside lists of skip reasons)."""
    if not dropped:
        return f"no channel maps onto the '{spec.name}' vocabulary: the recording has no channel"
    names = list(dropped)[:2]
    # example targets only show the syntax; the user writes the electrode each channel was recorded at
    targets = [c for c in ("fp1", "fp2", "i", "ii") if c in spec.channels][:2] or list(spec.channels[:2])
    pairs = ", ".join(f'"{n}": {t}' for n, t in zip(names, targets))
    lowered = {d.strip().lower() for d in dropped}
    unused = bool(explicit) and not any(k.strip().lower() in lowered for k in explicit)
    given = (f"; the channel_map given names none of them ({', '.join(repr(k) for k in list(explicit)[:3])}"
             f"{', ...' if len(explicit) > 3 else ''})" if unused else "")
    return (f"no channel maps onto the '{spec.name}' vocabulary: {describe_dropped(dropped)}{given}. If they are "
            f"'{spec.name}' channels under other names, set channel_map in the data section of the recipe, "
            f"e.g. `channel_map: {{{pairs}}}` with the electrode each was recorded at, or `channel_map: "
            f"channels.csv` with lines such as `{names[0]},{targets[0]}` (see \"Your own channel names\" in "
            "docs/datasets.md)")
