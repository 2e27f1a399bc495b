"""Parser and runner of ``neurorvq compare-tokenizers`` (jsonargparse, strict): several tokenizers of any family
reconstruct the same held-out windows; raw and per-band MSE in NeuroRVQ's Table 1 layout, bits/s and codebook
usage, as Markdown, CSV, JSON and a figure (:mod:`neurorvq.eval.compare`)."""

from __future__ import annotations

from typing import Optional, Sequence

from neurorvq.cli.parsing import parse_strict, repeatable, strict_parser

COMMAND = "compare-tokenizers"
PURPOSE = "reconstruct the same windows with several tokenizers: Table 1 per-band MSE, bits/s, codebook usage"
MODE_CHOICES = {"patch": ("patch",), "channel": ("channel",), "both": ("patch", "channel")}


def compare_parser():
    """The options of ``neurorvq compare-tokenizers``."""
    parser = strict_parser(
        f"neurorvq {COMMAND}",
        "Reconstruct the same held-out windows with each tokenizer (any family) and write NeuroRVQ's Table 1: raw "
        "and per-band MSE of standardised signals per filtering mode, bits per second, codebook usage and "
        "perplexity per level, with the paper's published rows beside ours (comparison.md, comparison.csv, "
        "codebook.csv, comparison.json, comparison.png in --out).")
    parser.add_argument("--tokenizers", nargs="+", required=True,
                        help="checkpoints, save_pretrained folders or Hub ids, optionally labelled name=path "
                        "(labels default to the file or folder name)")
    parser.add_argument("--data", required=True, help="recipe YAML (its data: section) or data YAML with "
                        "class_path/init_args")
    parser.add_argument("--set", type=list[str], default=[],
                        help="data init_args overrides, key=value (repeat --set, or --set+ to append)")
    parser.add_argument("--split", default="test", help="train | val | test | predict")
    parser.add_argument("--max_windows", type=Optional[int], default=1000,
                        help="compare at most this many windows (the first of the split); null = all")
    parser.add_argument("--mode", default="both", choices=tuple(MODE_CHOICES),
                        help="band filtering: patch (each patch of each channel on its own, as the official "
                        "plotting code), channel (each continuous channel, as neurorvq reconstruct) or both")
    parser.add_argument("--out", default="runs/compare-tokenizers", help="output folder (files of the same names "
                        "are replaced)")
    parser.add_argument("--figure", type=bool, default=True, help="write comparison.png")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    return parser


def run_compare_command(argv: Sequence[str]) -> int:
    """Parse ``argv`` (the options after ``neurorvq compare-tokenizers``) and run it; returns the exit status."""
    from neurorvq.eval.compare.command import compare_command

    args = parse_strict(compare_parser(), repeatable(argv, "--set"))
    compare_command(list(args.tokenizers), args.data, args.out, args.split, args.max_windows,
                    MODE_CHOICES[args.mode], args.device, list(args.set), figure=args.figure)
    return 0


__all__ = ["COMMAND", "MODE_CHOICES", "PURPOSE", "compare_parser", "run_compare_command"]
