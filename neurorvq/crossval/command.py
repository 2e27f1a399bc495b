"""Argument parsing of ``neurorvq cv`` and ``neurorvq cv-report``.

``neurorvq cv`` takes its own options (below) and passes every other argument to LightningCLI after the recipe,
so dotted overrides work as in ``neurorvq fit``: ``--trainer.max_epochs=3``, ``--model.init_args.fm=...``.
``--baseline eegnet`` trains a supervised baseline instead of the recipe's model (``logpower`` and ``riemann``
fit classical ones, ``linear_probe`` a logistic regression on the recipe FM's frozen features), and
``--folds_file`` reuses the folds of another run, so that models are compared on identical folds, or takes them
from a split file (:mod:`neurorvq.data.split_files`: fold name -> held-out values, e.g. a benchmark's fold lists).
``--group_by`` holds out subjects, recordings or the values of any column of the windows (``session``, ``run``);
``--stratify_by`` balances the test parts on the labels (default), on any column, or on nothing. ``--seeds``
trains every fold once per seed; ``--grid`` gives a model up to 3 settings chosen per fold on validation groups.
``{fold}`` in an override becomes each fold's index, e.g. ``--model.init_args.fm=runs/fm_fold{fold}/last.ckpt``
for one FM pretrained per fold without its test subjects. ``--protocol parity`` evaluates as the published EEG
benchmark and the official fine-tuning code do (no validation, last epoch, class weights from the training and
held-out labels, per-subject undersampling of the training windows: :mod:`neurorvq.crossval.protocol`);
``--unlisted drop`` leaves out the groups a split file lists in no fold. ``neurorvq cv-report A B --paired`` gives the
per-fold difference of two runs and its 95% interval; ``--curve 0=A 5=B 15=C`` the pretraining curve.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from neurorvq.cli.parsing import parse_strict, repeatable, split_recipe_overrides, strict_parser
from neurorvq.crossval.protocol import PROTOCOLS, UNLISTED
from neurorvq.crossval.runner import BASELINES  # the package's __init__ imports the runner anyway


def cv_parser():
    """The options of ``neurorvq cv`` (jsonargparse); the recipe's overrides are split off first
    (:func:`~neurorvq.cli.parsing.split_recipe_overrides`)."""
    parser = strict_parser(
        "neurorvq cv", "Subject-independent k-fold fine-tuning from a recipe; resumable per fold. "
        "Other arguments (e.g. --trainer.max_epochs=3, --model=other.yaml) go to the recipe as in neurorvq fit; "
        "{fold} in one of them becomes each fold's index (e.g. --model.init_args.fm=runs/fm_fold{fold}/last.ckpt: "
        "one FM pretrained per fold without its test subjects).")
    parser.add_argument("--config", required=True, help="fine-tuning recipe (LightningCLI YAML)")
    parser.add_argument("--folds", type=int, default=10, help="number of folds (at most the number of groups)")
    parser.add_argument("--out", default=None, help="output folder (default runs/cv/<recipe name>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    parser.add_argument("--val_fraction", type=Optional[float], default=None,
                        help="share of each fold's training groups used for model selection (0: test the last epoch; "
                        "default 0.1 under --protocol clean, 0 under parity, which allows no other value)")
    parser.add_argument("--protocol", default="clean", choices=PROTOCOLS,
                        help="clean: validation groups from each fold's training side select the checkpoint, class "
                        "weights from the training labels; parity: as the published EEG benchmark and NeuroRVQ's "
                        "official fine-tuning code: no validation part (the held-out fold is scored at the last "
                        "epoch), class weights from the training AND held-out labels (leaks the test label "
                        "distribution into the loss), training windows undersampled per subject")
    parser.add_argument("--balance_per_subject", type=Optional[bool], default=None,
                        help="true/false: undersample every subject's training windows to its minority class "
                        "(numpy default_rng seeded by the training seed and fold); omit for the protocol's default "
                        "(parity: true, clean: false); false for an already balanced data set such as High-Gamma")
    parser.add_argument("--unlisted", default="train", choices=UNLISTED,
                        help="groups a --folds_file split file lists in no fold: train (they train in every fold) or "
                        "drop (their windows are left out before the folds, as the benchmark uses only the listed "
                        "subjects)")
    parser.add_argument("--group_by", default="subject",
                        help="what a fold holds out: subject (subject-independent), recording (within-subject) or "
                        "any column of the windows, e.g. session or run (its values are the groups)")
    parser.add_argument("--val_group_by", default=None,
                        help="draw each fold's validation groups from this finer column instead of --group_by (e.g. "
                        "--group_by user_set with a train/test parts file and --val_group_by subject: validation "
                        "subjects from the training users); default: --group_by")
    parser.add_argument("--stratify_by", default="label",
                        help="what the folds' test parts are balanced on: label (the classes), none, or any column "
                        "of the windows, e.g. repetition (class checks stay on the labels)")
    parser.add_argument("--monitor", default="val/balanced_accuracy", help="validation metric selecting the epoch")
    parser.add_argument("--mode", default="max", choices=("max", "min"))
    parser.add_argument("--allow_missing_classes", action="store_true", default=False,
                        help="accept test folds that miss some classes (otherwise an error)")
    parser.add_argument("--baseline", default=None, choices=BASELINES,
                        help="instead of the recipe's model: a supervised baseline (eegnet, shallow_convnet), a "
                        "classical one (logpower: log band power + logistic regression; riemann: covariance -> "
                        "tangent space -> logistic regression; needs neurorvq[classical]) or linear_probe "
                        "(logistic regression on the recipe FM's frozen features, pooled by model.init_args.pooling)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="training seeds on fixed folds (e.g. --seeds 0 1 2): every fold is trained once per "
                        "seed; tables give mean ± std and a 95% t-interval over the per-fold means")
    parser.add_argument("--grid", type=Optional[list[str]], default=None, metavar="KEY=[V1,V2,...]",
                        help="settings chosen per fold on its validation groups, e.g. "
                        "--grid \"model.init_args.lr=[1e-3, 3e-4, 1e-4]\" (repeatable; at most 3 settings in all)")
    parser.add_argument("--folds_file", default=None,
                        help="folds.json of another run to reuse (identical folds), or a split file with folds "
                        "(JSON {\"format\": \"neurorvq-split\", \"by\": ..., \"folds\": {name: [values]}}, a "
                        "benchmark's bare {\"0\": [...]} list, or a CSV '<column>,fold') whose 'by' is --group_by; "
                        "validation groups then come from each fold's training side (--val_fraction 0: none); "
                        "or a split file with train/(val/)test parts, run as one fold (--folds 1): its val part "
                        "validates under clean and trains under parity; default: made from --seed")
    parser.add_argument("--only_folds", type=int, nargs="+", default=None,
                        help="run only these fold indices now (the others stay for a later run into the same --out; "
                        "the tables cover the finished folds)")
    parser.add_argument("--name", default=None, help="model label in the tables (default from the model)")
    parser.add_argument("--task", default=None, help="task label in the tables (default from the DataModule)")
    return parser


def run_cv_command(argv: Sequence[str]) -> int:
    from pathlib import Path

    from neurorvq.crossval.runner import CVSettings, run_cv

    own, overrides = split_recipe_overrides(argv)
    args = parse_strict(cv_parser(), repeatable(own, "--grid"))
    settings = CVSettings(recipe=args.config, overrides=list(overrides), n_folds=args.folds, seed=args.seed,
                          val_fraction=args.val_fraction, group_by=args.group_by, stratify_by=args.stratify_by,
                          val_group_by=args.val_group_by,
                          monitor=args.monitor,
                          mode=args.mode, require_all_classes=not args.allow_missing_classes, name=args.name,
                          baseline=args.baseline, folds_file=args.folds_file, seeds=args.seeds, grid=args.grid,
                          only_folds=args.only_folds, protocol=args.protocol,
                          balance_per_subject=args.balance_per_subject, unlisted=args.unlisted)
    out = args.out or str(Path("runs") / "cv" / Path(args.config).stem)
    summary = run_cv(settings, out, task=args.task)
    from neurorvq.crossval.report import markdown_table

    print(markdown_table([summary]))
    return 0


def run_report_command(argv: Sequence[str]) -> int:
    from pathlib import Path

    from neurorvq.crossval.report import combine, paired_report

    parser = strict_parser("neurorvq cv-report", "One Markdown table of several neurorvq cv output folders.")
    parser.add_argument("folders", nargs="+", help="output folders of finished neurorvq cv runs")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--paired", action="store_true", default=False,
                        help="two folders run on identical folds: the per-fold difference (first minus second), "
                        "its mean and 95% t-interval")
    parser.add_argument("--metric", default="balanced_accuracy", help="metric of the paired comparison or curve")
    parser.add_argument("--curve", action="store_true", default=False,
                        help="the folders are X=FOLDER points of a pretraining curve (X: pretraining epochs or "
                        "steps of the fine-tuned FM, 0 = from scratch), e.g. 0=runs/cv/scratch 15=runs/cv/fm: "
                        "per-fold scores, 95% intervals, paired differences with the first point")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="curve: only these training seeds")
    parser.add_argument("--figure", default=None, help="curve: also write this PNG")
    parser.add_argument("--xlabel", default="pretraining epochs", help="curve: what X counts")
    parser.add_argument("--reference", type=Optional[list[str]], default=None, metavar="FOLDER",
                        help="curve figure: a dashed line at this cv run's mean (e.g. the best baseline)")
    parser.add_argument("--chance", type=float, default=None, help="curve figure: chance level")
    args = parse_strict(parser, repeatable(argv, "--reference"))
    if args.paired and len(args.folders) != 2:
        from neurorvq.errors import ConfigError

        raise ConfigError(f"cv-report --paired compares exactly two runs; got {len(args.folders)} folders")
    if args.curve:
        table = curve_report(args)
    else:
        table = paired_report(*args.folders, metric=args.metric) if args.paired else combine(args.folders)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return 0


def curve_report(args: Any) -> str:
    """``cv-report --curve``: the curve's Markdown table (and figure with ``--figure``)."""
    from neurorvq.crossval.curve import curve_figure, curve_markdown, curve_points, parse_point
    from neurorvq.crossval.report import read_records, read_summary
    from neurorvq.crossval.stats import check_identical_folds, per_fold_means, record_seed

    curve = curve_points([parse_point(p) for p in args.folders], args.metric, args.seeds)
    unit = args.xlabel.removeprefix("pretraining ")
    if args.figure:
        references = {}
        for folder in args.reference or []:  # the same seeds as the curve, on its folds
            rows = [r for r in read_records(folder) if args.seeds is None or record_seed(r) in set(args.seeds)]
            check_identical_folds(read_records(curve[0]["folder"]), rows, (curve[0]["folder"], str(folder)))
            scores = per_fold_means(rows, args.metric)
            references[str(read_summary(folder).get("name", folder))] = sum(scores.values()) / max(len(scores), 1)
        curve_figure(curve, args.figure, args.metric, args.xlabel, args.chance, references)
    return curve_markdown(curve, args.metric, unit)


__all__ = ["curve_report", "cv_parser", "run_cv_command", "run_report_command"]
