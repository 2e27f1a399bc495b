"""Parser and runner of ``neurorvq benchmark`` (jsonargparse, strict): a paper table's rows through ``neurorvq cv`` on
the official folds, written in the paper's layout (:mod:`neurorvq.benchmarks`).

``--model`` is this command's own option (a checkpoint or a model recipe; for the reconstruction table a tokenizer,
repeatable); every other argument whose key starts with a recipe section (``--trainer.max_epochs=1``,
``--model.init_args.fm_overrides=...``, ``--data.init_args.batch_size=8``) is passed to every row's recipe, as in
``neurorvq cv`` (the reconstruction table takes ``--data.init_args.*`` only).

``--cache`` (default true): the models of a row share one on-disk cache of the row's windows,
``<out>/<table>/<row>/window_cache`` (passed as ``--data.init_args.cache_dir`` unless the recipe or an override sets
it), so the recordings are read and preprocessed once per row, not once per model or resumed run; ``--cache false``
loads them in memory every time. The cache does not enter a run's identity: runs made with or without it resume
alike (:mod:`neurorvq.benchmarks.run`).
"""

from __future__ import annotations

from typing import Optional, Sequence

from neurorvq.cli.parsing import parse_strict, repeatable, split_recipe_overrides, strict_parser

COMMAND = "benchmark"


def benchmark_parser():
    """The options of ``neurorvq benchmark``."""
    from neurorvq.benchmarks.run import DEFAULT_OUT
    from neurorvq.benchmarks.tables import DEFAULT_DATA_DIR, TABLES
    from neurorvq.crossval.runner import BASELINES

    parser = strict_parser(
        f"neurorvq {COMMAND}",
        "Run every row of a benchmark table through neurorvq cv on the official split (folds, or one published "
        "train/test split; resumable row by row and fold by fold) and write <out>/<table>/table.md, table.csv and "
        "table.png: balanced accuracy and accuracy, mean ± std over folds, the published numbers beside ours. The "
        "reconstruction table (--table recon) reconstructs each dataset's windows with every --model tokenizer "
        "through the comparison harness instead (raw and per-band MSE). Other arguments (--trainer.max_epochs=3, "
        "--data.init_args.batch_size=16, ...) go to every row's recipe as in neurorvq cv.")
    parser.add_argument("--table", default=None,
                        help=f"a built-in table ({', '.join(TABLES)}; 'reconstruction' is 'recon') or the path of a "
                        "YAML table file (neurorvq.benchmarks.tables)")
    parser.add_argument("--list", action="store_true", default=False,
                        help="list every table (or --table's), its rows, datasets, split files and recipes, and "
                        "whether each dataset is present locally; runs nothing")
    parser.add_argument("--model", default=None,
                        help="ours: a checkpoint (official .pt, PretrainTask .ckpt, save_pretrained folder) set as "
                        "each row recipe's model.init_args.fm, or a YAML recipe whose model section replaces each "
                        "row's (keeping its modality and num_classes); omit to run --baselines only. Reconstruction "
                        "table: a tokenizer (official file, save_pretrained folder, TokenizerTask .ckpt, hf:// id), "
                        "repeatable, name=path to label one")
    parser.add_argument("--name", default=None, help="label of --model in the tables and its output folder "
                        "(default: the file or folder name)")
    parser.add_argument("--baselines", nargs="+", default=[], choices=BASELINES,
                        help="baselines trained or fitted on the same folds (neurorvq cv --baseline)")
    parser.add_argument("--protocol", default="clean", choices=("clean", "parity"),
                        help="clean (default: validation subjects from each fold's training side select the "
                        "checkpoint) or parity (the published benchmark's: no validation part, last epoch tested, "
                        "class weights from train + held-out labels, per-subject balanced training windows; it "
                        "leaks, see docs/paper-tables.md)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="training seeds: every fold once per seed (a fold's score is its mean over seeds)")
    parser.add_argument("--rows", nargs="+", default=None, help="run only these rows (e.g. --rows motor eyes)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder: <out>/<table>/<row>/<model>/ per run, "
                        "<out>/<table>/table.* for the table")
    parser.add_argument("--recipes", default=None,
                        help="folder holding the built-in tables' row recipes (default: recipes/benchmarks of this "
                        "checkout)")
    parser.add_argument("--data_dir", default=None,
                        help=f"folder holding each row's data folder (e.g. eegmmidb/); default: the recipe's "
                        f"data.init_args.root, which is {DEFAULT_DATA_DIR}/<folder>")
    parser.add_argument("--root", type=list[str], default=[], metavar="ROW=PATH",
                        help="the data folder of one row (repeatable), e.g. --root eyes=/data/eegmmidb")
    parser.add_argument("--figure", type=bool, default=True, help="write table.png")
    parser.add_argument("--cache", type=bool, default=True,
                        help="share one on-disk cache of each row's preprocessed windows between its models and "
                        "resumed runs: <out>/<table>/<row>/window_cache (float32 windows, about the size of the "
                        "preprocessed data; delete it to reclaim the space), unless the recipe or a "
                        "--data.init_args.cache_dir override sets one; false: load the recordings in memory for "
                        "every model (fine-tuning tables only)")
    parser.add_argument("--max_windows", type=Optional[int], default=1000,
                        help="reconstruction table: windows reconstructed per dataset, a reproducible draw over all "
                        "subjects (null = all)")
    parser.add_argument("--device", default="auto", help="reconstruction table: auto | cpu | cuda | cuda:N")
    return parser


def own_model(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` without every ``--model VALUE`` / ``--model=VALUE`` (this command's option, whose key is also a
    recipe section), and those values in order."""
    from neurorvq.errors import ConfigError

    rest, models, args, i = [], [], list(argv), 0
    while i < len(args):
        arg = args[i]
        if arg == "--model":
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ConfigError("--model needs a value: a checkpoint or a YAML model recipe (a tokenizer for the "
                                  "reconstruction table)")
            models.append(args[i + 1])
            i += 2
            continue
        if arg.startswith("--model="):
            models.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    return rest, models


def parse_roots(items: Sequence[str]) -> dict[str, str]:
    """``["eyes=/data/eegmmidb", ...]`` -> ``{"eyes": "/data/eegmmidb"}``."""
    from neurorvq.errors import ConfigError

    roots: dict[str, str] = {}
    for item in items:
        key, sep, path = str(item).partition("=")
        if not sep or not key or not path:
            raise ConfigError(f"--root {item!r}: expected ROW=PATH, e.g. --root eyes=/data/eegmmidb")
        roots[key] = path
    return roots


def run_benchmark_command(argv: Sequence[str]) -> int:
    """Parse ``argv`` (the options after ``neurorvq benchmark``) and run it; returns the exit status."""
    from neurorvq.benchmarks.run import BenchmarkSettings, data_overrides, run_benchmark
    from neurorvq.benchmarks.tables import get_table
    from neurorvq.errors import ConfigError

    rest, models = own_model(argv)
    own, overrides = split_recipe_overrides(rest)
    args = parse_strict(benchmark_parser(), repeatable(own, "--root"))
    roots = parse_roots(args.root)
    if args.list:
        from neurorvq.benchmarks.listing import list_tables

        tables = None if args.table is None else [get_table(args.table)]
        print(list_tables(tables, args.recipes, args.data_dir, roots, data_overrides(overrides)), end="")
        return 0
    if args.table is None:
        raise ConfigError("--table is required: a built-in table (eeg, ecg, emg, recon) or a YAML table file "
                          "(--list shows them)")
    settings = BenchmarkSettings(table=get_table(args.table), model=models[0] if len(models) == 1 else None,
                                 name=args.name, baselines=list(args.baselines), protocol=args.protocol,
                                 seeds=args.seeds, out=args.out, rows=args.rows, recipes=args.recipes,
                                 data_dir=args.data_dir, roots=roots, overrides=list(overrides), figure=args.figure,
                                 models=models, max_windows=args.max_windows, device=args.device,
                                 cache=args.cache)
    run_benchmark(settings)
    return 0


__all__ = ["COMMAND", "benchmark_parser", "own_model", "parse_roots", "run_benchmark_command"]
