"""The ``neurorvq`` command line.

``neurorvq fit|validate|test|predict --config recipes/<recipe>.yaml`` runs LightningCLI (``--print_config``,
dotted overrides such as ``--trainer.max_epochs=3``); ``neurorvq tokenize``, ``neurorvq reconstruct`` and
``neurorvq demo`` are project commands (``neurorvq <command> --help``); ``neurorvq cv`` runs subject-independent
cross-validation from a fine-tuning recipe and ``neurorvq cv-report`` tabulates several such runs
(:mod:`neurorvq.crossval`).
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

PROJECT_COMMANDS = ("tokenize", "reconstruct", "demo")
CV_COMMANDS = ("cv", "cv-report")


def _project_parser(command: str):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog=f"neurorvq {command}", description=_DESCRIPTIONS[command])
    if command in ("tokenize", "reconstruct"):
        parser.add_argument("--ckpt", required=True, help="TokenizerTask .ckpt, save_pretrained folder, or official "
                            "checkpoint")
        parser.add_argument("--data", required=True, help="recipe YAML (its data: section) or data YAML with "
                            "class_path/init_args")
        parser.add_argument("--split", default="test", help="train | val | test | predict")
        parser.add_argument("--set", type=list[str], default=[], help="data init_args overrides, key=value")
        parser.add_argument("--max_batches", type=Optional[int], default=None)
        parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    if command == "tokenize":
        parser.add_argument("--out", required=True, help="output folder")
        parser.add_argument("--overwrite", type=bool, default=False, help="replace tokens of another tokenizer")
        parser.add_argument("--shard_windows", type=int, default=4096)
    if command == "reconstruct":
        parser.add_argument("--figure", type=Optional[str], default="reconstruction.png")
    if command == "demo":
        parser.add_argument("--modality", default="eeg")
        parser.add_argument("--channels", type=int, default=16)
        parser.add_argument("--seconds", type=float, default=4.0)
        parser.add_argument("--batch", type=int, default=2)
        parser.add_argument("--seed", type=int, default=0)
    return parser


_DESCRIPTIONS = {
    "tokenize": "Write the token ids of a dataset split (format: neurorvq.token_files).",
    "reconstruct": "Reconstruct a dataset split; print raw and per-band MSE and write a figure.",
    "demo": "Encode and reconstruct generated signals with a freshly initialised tokenizer.",
}


def _run_project_command(command: str, argv: Sequence[str]) -> int:
    from neurorvq import commands

    args = _project_parser(command).parse_args(list(argv))
    if command == "demo":
        commands.demo(args.modality, args.channels, args.seconds, args.batch, args.seed)
    elif command == "tokenize":
        commands.tokenize(args.ckpt, args.data, args.out, args.split, args.overwrite, args.shard_windows,
                          args.max_batches, args.device, args.set)
    else:
        commands.reconstruct(args.ckpt, args.data, args.split, args.max_batches, args.figure, args.device, args.set)
    return 0


def run_lightning_cli(argv: Sequence[str] | None):
    """LightningCLI over any LightningModule/LightningDataModule named by ``class_path`` in the recipe."""
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    return LightningCLI(
        L.LightningModule, L.LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
        args=None if argv is None else list(argv), save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in PROJECT_COMMANDS:
        return _run_project_command(args[0], args[1:])
    if args and args[0] in CV_COMMANDS:
        from neurorvq.crossval.command import run_cv_command, run_report_command

        return (run_cv_command if args[0] == "cv" else run_report_command)(args[1:])
    from neurorvq.recipe_check import check_recipe_fields

    check_recipe_fields(args)
    run_lightning_cli(args if argv is not None else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
