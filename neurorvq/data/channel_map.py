"""A user's channel map: recording channel name -> vocabulary name, from a recipe or a file.

A loader's ``channel_map`` option takes either a mapping (``{"EEG 000": "fp1", ...}`` in the recipe) or the path
of a file of ``old,new`` pairs:

* CSV (``.csv``, comma) or TSV (``.tsv``/``.tab``, tab): two columns per line; an optional header line
  (``old,new``, ``recording,electrode``, ``channel,electrode`` or ``from,to``); blank lines and ``#`` comments
  (a whole line, or the end of one) are skipped; fields may be quoted (``"EEG 000",fp1``).
* JSON (``.json``, or any file starting with ``{``): one object ``{"EEG 000": "fp1", ...}``.

Other extensions are read as TSV if their first pair holds a tab, else as CSV. :func:`load_channel_map` checks
the map once, at configuration time: every line a pair, every recording channel once, no electrode twice, and
(given the modality) every target a vocabulary name. :func:`with_channel_map` puts the map into a pipeline's
:class:`~neurorvq.data.preprocess.PickChannels` step (as its ``explicit`` choices, applied before the automatic
rules of :mod:`neurorvq.data.channels`) and :func:`check_recording_channels` compares it with one recording.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from neurorvq.data.preprocess import PickChannels, Pipeline
from neurorvq.errors import ConfigError, InputError
from neurorvq.registry import ModalitySpec
from neurorvq.vocabulary import decode_channel_name, decode_channel_names

ChannelMapValue = Union[Mapping[str, str], str, os.PathLike, None]
"""What a ``channel_map`` option accepts: a mapping, a file path, or ``None`` (no map)."""

HEADERS: tuple[tuple[str, str], ...] = (("old", "new"), ("recording", "electrode"), ("channel", "electrode"),
                                        ("from", "to"))
"""First lines of a CSV/TSV map that are read as a header (case-insensitive), not as a pair."""

_FILE_FORMS = "a CSV/TSV/JSON file of old,new pairs"


def load_channel_map(value: ChannelMapValue, spec: ModalitySpec | None = None) -> dict[str, str]:
    """The checked map ``{recording channel: vocabulary name}`` of a ``channel_map`` option.

    ``value``: a mapping, the path of a CSV/TSV/JSON file (module docstring; relative to the current folder) or
    ``None`` (-> ``{}``). Keys are kept as given (stripped; matched case-insensitively against a recording's
    names); targets are lower-cased. With ``spec``, every target must be one of ``spec.channels``.

    Raises :class:`ConfigError` naming the file and line (or the entry) for: a missing or unreadable file, a
    line that is not a pair, a recording channel given twice, two channels sent to the same electrode, a target
    outside the vocabulary.
    """
    if value is None:
        return {}
    if isinstance(value, Mapping):
        pairs = [(None, k, v) for k, v in value.items()]
        origin = "channel_map"
    elif isinstance(value, (str, os.PathLike)):
        path = Path(value).expanduser()
        pairs = _read_file(path)
        origin = f"channel_map file '{path}'"
        if not pairs:
            raise ConfigError(f"{origin} maps no channel: give one pair per line such as 'EEG 000,fp1'")
    else:
        raise ConfigError(f"channel_map is a {type(value).__name__} ({value!r}); give a mapping such as "
                          f'{{"EEG 000": fp1, "EEG 001": fp2}} or the path of {_FILE_FORMS}')
    return _check(pairs, origin, spec)


def _check(pairs: Sequence[tuple[str | None, Any, Any]], origin: str, spec: ModalitySpec | None) -> dict[str, str]:
    """``pairs`` of ``(line or None, old, new)`` from ``origin`` as a checked map (see :func:`load_channel_map`)."""

    def at(loc: str | None) -> str:
        return f" ({loc})" if loc else ""

    out: dict[str, str] = {}
    seen_old: dict[str, tuple[str, str | None]] = {}  # lower-case recording name -> (name as given, its line)
    seen_new: dict[str, tuple[str, str | None]] = {}  # target -> (recording name, its line)
    outside: list[str] = []
    for loc, old, new in pairs:
        where = f"{origin}, {loc}" if loc else f"{origin} entry {old!r}"
        old = _name(old, where, "recording channel")
        new = _name(new, where, f"electrode of '{old}'").lower()
        if old.lower() in seen_old:
            first, first_loc = seen_old[old.lower()]
            spelled = f" as '{first}' (names match case-insensitively)" if first != old else ""
            raise ConfigError(f"{where}: '{old}' is already mapped{spelled}{at(first_loc)}; give each recording "
                              "channel once")
        if new in seen_new:
            other, other_loc = seen_new[new]
            raise ConfigError(f"{origin}: '{other}'{at(other_loc)} and '{old}'{at(loc)} both map to '{new}'; an "
                              "electrode takes one channel: correct one of them")
        if spec is not None and new not in spec.channels:
            close = spec.closest_channels(new)
            outside.append(f"'{old}' -> '{new}'{at(loc)}" + (f", closest: {', '.join(close)}" if close else ""))
        seen_old[old.lower()], seen_new[new] = (old, loc), (old, loc)
        out[old] = new
    if outside:
        listed = "; ".join(outside[:10]) + (f"; and {len(outside) - 10} more" if len(outside) > 10 else "")
        raise ConfigError(f"{origin}: {len(outside)} electrode(s) not in the '{spec.name}' vocabulary: {listed}. "
                          f"Use vocabulary names (neurorvq.registry.get_modality('{spec.name}').channels)")
    return out


def _name(value: Any, where: str, what: str) -> str:
    """``value`` (str, bytes, numpy string or integer) as a stripped name; a :class:`ConfigError` otherwise."""
    try:
        text = str(decode_channel_name(value, f"the {what}")).strip()
    except InputError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not text:
        raise ConfigError(f"{where}: the {what} is empty")
    return text


# ------------------------------------------------------------------------------------------------ files
def _read_file(path: Path) -> list[tuple[str | None, Any, Any]]:
    """``(line or None, old, new)`` of every pair in the map file ``path``."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"channel_map file '{path}' {what} (relative paths start at {Path.cwd()}): give the path "
                          f'of {_FILE_FORMS}, or the map itself as {{"EEG 000": fp1, ...}}')
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"channel_map file '{path}' is unreadable ({exc}); save it as UTF-8 text") from exc
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix not in (".csv", ".tsv", ".tab") and text.lstrip().startswith("{")):
        return _read_json(path, text)
    return _read_delimited(path, text, {".csv": ",", ".tsv": "\t", ".tab": "\t"}.get(suffix))


def _read_json(path: Path, text: str) -> list[tuple[str | None, Any, Any]]:
    def no_repeats(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ConfigError(f"channel_map file '{path}' gives {repeated} more than once; give each recording "
                              "channel once")
        return dict(items)

    try:
        data = json.loads(text, object_pairs_hook=no_repeats)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"channel_map file '{path}', line {exc.lineno}: not valid JSON ({exc.msg}, column "
                          f"{exc.colno})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"channel_map file '{path}' holds a JSON {type(data).__name__}; it must be one object "
                          '{"EEG 000": "fp1", ...}')
    return [(None, k, v) for k, v in data.items()]


def _read_delimited(path: Path, text: str, delimiter: str | None) -> list[tuple[str | None, Any, Any]]:
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = _strip_comment(line).strip()
        if not line:
            continue
        if delimiter is None:  # unknown extension: decided by the first pair
            delimiter = "\t" if "\t" in line else ","
        fields = [f.strip() for f in next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))]
        while len(fields) > 2 and not fields[-1]:  # trailing empty columns, as spreadsheets write them
            fields.pop()
        if len(fields) != 2 or not all(fields):
            sep = "a tab" if delimiter == "\t" else "a comma"
            raise ConfigError(f"channel_map file '{path}', line {number}: expected two columns old,new (a recording "
                              f"channel and its electrode, separated by {sep}), got {line!r}")
        if not pairs and tuple(f.lower() for f in fields) in HEADERS:
            continue
        pairs.append((f"line {number}", fields[0], fields[1]))
    return pairs


def _strip_comment(line: str) -> str:
    """``line`` up to its first ``#`` outside double quotes."""
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:i]
    return line


# ------------------------------------------------------------------------------------------------ loaders
def with_channel_map(pipeline: Pipeline, channel_map: Mapping[str, str]) -> Pipeline:
    """``pipeline`` with ``channel_map`` as the ``explicit`` choices of its :class:`PickChannels` step(s).

    An empty map leaves the pipeline as it is. A :class:`ConfigError` if the pipeline has no ``PickChannels``
    step, or one with other ``explicit`` choices of its own (the renaming is given once, as ``channel_map``).
    """
    if not channel_map:
        return pipeline
    picks = [s for s in pipeline.steps if isinstance(s, PickChannels)]
    if not picks:
        raise ConfigError("channel_map renames channels in the PickChannels step, but data.init_args.steps has "
                          "none: add {step: PickChannels} as the first step")
    if any(s.explicit and dict(s.explicit) != dict(channel_map) for s in picks):
        raise ConfigError("both channel_map and a PickChannels step's 'explicit' rename channels; give the "
                          "renaming once, as channel_map, and drop 'explicit' from data.init_args.steps")
    steps = [dataclasses.replace(s, explicit=dict(channel_map)) if isinstance(s, PickChannels) else s
             for s in pipeline.steps]
    return Pipeline(pipeline.spec, steps)


def absent_channels(channel_map: Mapping[str, str], names: Sequence[str]) -> list[str]:
    """Names of ``channel_map`` that are not among a recording's channel ``names`` (case-insensitive, as
    :func:`~neurorvq.data.channels.map_channels` matches them), in map order."""
    present = {str(n).strip().lower() for n in decode_channel_names(names, "recording channel names")}
    return [old for old in channel_map if old.strip().lower() not in present]


def check_recording_channels(channel_map: Mapping[str, str], names: Sequence[str], source: str,
                             partial: bool = False) -> dict[str, str]:
    """Compare ``channel_map`` with the channel ``names`` of recording ``source``.

    Every map name must be a channel of the recording: a missing one is a :class:`ConfigError` naming the file
    and the missing names (a typo, or the map of another export), unless ``partial`` (a folder mixing
    montages), where the missing names are returned as ``{name: reason}`` for the summary's dropped channels.
    """
    names = [str(n) for n in decode_channel_names(names, "recording channel names")]
    missing = absent_channels(channel_map, names)
    if not missing:
        return {}
    if partial:
        return {old: "named in channel_map but absent from some recordings (channel_map_partial)" for old in missing}
    listed = ", ".join(f"'{m}'" for m in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10
                                                          else "")
    shown = ", ".join(f"'{n}'" for n in list(names)[:8]) + (", ..." if len(names) > 8 else "")
    raise ConfigError(f"{source} lacks {len(missing)} channel(s) named in channel_map: {listed} (its {len(names)} "
                      f"channels: {shown}). Correct these names in channel_map, or, if the folder mixes montages, "
                      "set channel_map_partial: true in the data section (names a recording lacks are then "
                      "reported in the summary, not refused)")


__all__ = ["ChannelMapValue", "HEADERS", "absent_channels", "check_recording_channels", "load_channel_map",
           "with_channel_map"]
