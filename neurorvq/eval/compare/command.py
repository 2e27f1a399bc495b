"""``neurorvq compare-tokenizers`` without the argument parsing: checkpoints and a data file in, reports out."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from neurorvq.errors import ConfigError
from neurorvq.eval.compare.run import MODES, Comparison, compare_tokenizers, default_name


def parse_sources(items: Sequence[str]) -> dict[str, str]:
    """``["name=path", "path", ...]`` -> ``{name: source}``. ``name=`` is a label when the whole text is not an
    existing path and the name has no ``/``; otherwise the label is :func:`default_name` of the source."""
    sources: dict[str, str] = {}
    for item in items:
        text = str(item)
        name, sep, rest = text.partition("=")
        if sep and name and rest and "/" not in name and not Path(text).exists():
            label, source = name, rest
        else:
            label, source = default_name(text), text
        if label in sources:
            raise ConfigError(f"--tokenizers: two tokenizers are named {label!r} ({sources[label]} and {source}); "
                              "label them as name=path")
        sources[label] = source
    if not sources:
        raise ConfigError("--tokenizers is empty; give one or more checkpoints or folders (name=path to label them)")
    return sources


def _absolute(source: str) -> str:
    path = Path(source)
    return str(path.resolve()) if path.exists() else source


def compare_command(tokenizers: Sequence[str], data: str, out: str | Path, split: str = "test",
                    max_windows: int | None = 1000, modes: Sequence[str] = MODES, device: str = "auto",
                    overrides: Sequence[str] = (), figure: bool = True) -> Comparison:
    """Compare ``tokenizers`` (``name=path`` or paths: checkpoints, ``save_pretrained`` folders, Hub ids) on the
    first ``max_windows`` windows of ``split`` of ``data`` (a recipe YAML or a data YAML, with ``key=value``
    ``overrides`` of its ``init_args``); print the Markdown report and write the files of
    :data:`~neurorvq.eval.compare.report.FILES` to ``out``. Returns the comparison."""
    from neurorvq.commands import SPLITS, load_datamodule, split_loader
    from neurorvq.eval.compare.report import markdown_report, write_report

    if split not in SPLITS:  # refused before anything is loaded
        raise ConfigError(f"--split '{split}' is not one of {', '.join(SPLITS)}")
    sources = parse_sources(tokenizers)
    datamodule = load_datamodule(data, overrides)
    # set up first: a tokenizer is checked against the channels the windows use (a recording DataModule knows them
    # once loaded), not the modality's whole vocabulary, which a smaller one such as LaBraM's would refuse
    loader = split_loader(datamodule, split)
    comparison = compare_tokenizers(sources, loader, datamodule, modes=modes, max_windows=max_windows, device=device)
    context = {"data": _absolute(data), "split": split, "overrides": list(overrides), "max_windows": max_windows,
               "tokenizers": {name: _absolute(source) for name, source in sources.items()}}
    print(markdown_report(comparison, context))
    paths = write_report(comparison, out, context, figure=figure)
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return comparison


__all__ = ["compare_command", "parse_sources"]
