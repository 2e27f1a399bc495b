"""Parsers and runners of the project subcommands ``tokenize``, ``reconstruct`` and ``demo`` (jsonargparse)."""

from __future__ import annotations

from typing import Optional, Sequence

from neurorvq.cli.parsing import parse_strict, repeatable, strict_parser

DESCRIPTIONS = {
    "tokenize": "Write the token ids of a dataset split (format: neurorvq.token_files) through Lightning's "
                "prediction loop, on one device or several (--devices, --strategy ddp).",
    "reconstruct": "Reconstruct a dataset split; print raw and per-band MSE and the codebook usage, write a figure.",
    "demo": "Encode and reconstruct generated signals with a freshly initialised tokenizer.",
}


def project_parser(command: str):
    """The jsonargparse parser of ``neurorvq <command>``."""
    parser = strict_parser(f"neurorvq {command}", DESCRIPTIONS[command])
    if command in ("tokenize", "reconstruct"):
        parser.add_argument("--ckpt", required=True, help="TokenizerTask .ckpt, save_pretrained folder, or official "
                            "checkpoint")
        parser.add_argument("--data", required=True, help="recipe YAML (its data: section) or data YAML with "
                            "class_path/init_args")
        parser.add_argument("--split", default="test", help="train | val | test | predict")
        parser.add_argument("--set", type=list[str], default=[],
                            help="data init_args overrides, key=value (repeat --set, or --set+ to append)")
        parser.add_argument("--max_batches", type=Optional[int], default=None,
                            help="at most this many batches (tokenize: per process); default: all")
        parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    if command == "tokenize":
        parser.add_argument("--out", required=True, help="output folder (other files in it are kept)")
        parser.add_argument("--overwrite", type=bool, default=False,
                            help="replace tokens of another tokenizer, or write into a folder holding other files")
        parser.add_argument("--shard_windows", type=int, default=4096)
        parser.add_argument("--accelerator", type=Optional[str], default=None,
                            help="Lightning accelerator: cpu | gpu | auto ...; default: from --device")
        parser.add_argument("--devices", type=Optional[str], default=None,
                            help="Lightning devices: a number, a list like 0,1, or auto; several write one shard "
                            "series per process; default: 1")
        parser.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp with several devices")
    if command == "reconstruct":
        parser.add_argument("--figure", type=Optional[str], default="auto",
                            help="PNG of one window; auto = reconstruction_<split>.png beside the checkpoint; "
                            "null = none")
        parser.add_argument("--report", type=Optional[str], default="auto",
                            help="JSON of the printed tables with their context; auto = beside the figure; null = none")
    if command == "demo":
        parser.add_argument("--modality", default="eeg")
        parser.add_argument("--channels", type=int, default=16)
        parser.add_argument("--seconds", type=float, default=4.0)
        parser.add_argument("--batch", type=int, default=2)
        parser.add_argument("--seed", type=int, default=0)
    return parser


def run_project_command(command: str, argv: Sequence[str]) -> int:
    """Parse ``argv`` and run ``neurorvq <command>``; returns the exit status."""
    from neurorvq import commands

    argv = repeatable(argv, "--set")  # --set key=value, as documented, also repeated
    args = parse_strict(project_parser(command), argv)
    if command == "demo":
        commands.demo(args.modality, args.channels, args.seconds, args.batch, args.seed)
    elif command == "tokenize":
        commands.tokenize(args.ckpt, args.data, args.out, args.split, args.overwrite, args.shard_windows,
                          args.max_batches, args.device, list(args.set), accelerator=args.accelerator,
                          devices=args.devices, strategy=args.strategy)
    else:
        commands.reconstruct(args.ckpt, args.data, args.split, args.max_batches, args.figure, args.device,
                             list(args.set), report=args.report)
    return 0


__all__ = ["DESCRIPTIONS", "project_parser", "run_project_command"]
