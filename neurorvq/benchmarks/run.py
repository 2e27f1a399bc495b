"""Run a benchmark table: every (row, model) through the cross-validation runner on the row's official folds.

Models of a call: ``--model`` (ours: a checkpoint or weights file/folder, passed as
``--model.init_args.fm=<path>`` to each row's recipe; or a YAML recipe whose ``model`` section replaces each row's,
keeping the row's ``modality`` and ``num_classes``), then each ``--baselines`` entry (``CVSettings.baseline``).
Each (row, model) is one :func:`~neurorvq.crossval.runner.run_cv` into ``<out>/<table>/<row>/<model slug>/``
with the row's split file as ``folds_file`` (its fold count as ``n_folds``; a parts file, train / val / test, is
one fold), grouped by the row's ``group_by`` column (subjects; PTB-XL's ``strat_fold``; EPN-612's ``user_set``, with
clean validation subjects by ``val_group_by``), the values the split lists nowhere dropped (``unlisted="drop"``).
A row whose split is the dataset's own (``split: dataset``, Discrete Gestures' corpus CSV) has it resolved from the
DataModule without loading (:func:`resolve_dataset_split`) and written as ``<run folder>/split.json``, a parts
file by subject, run as one fold. The protocol: ``parity`` (the published benchmark's: no
validation part, last epoch tested, class weights from train + held-out labels, per-subject balanced undersampling
unless the row is already balanced) or ``clean`` (the default: validation subjects from the training side select
the checkpoint, class weights from the training labels): ``clean`` is the leak-free estimate, ``parity`` the
protocol of the published numbers the tables put beside ours (docs/paper-tables.md says what it leaks).

A reconstruction table (every row ``metric: mse``) runs through :mod:`neurorvq.benchmarks.recon` instead.

Window cache: every model of a row folds the same windows, so by default the row's runs share an on-disk cache of
them (``--data.init_args.cache_dir=<out>/<table>/<row>/window_cache``, :data:`CACHE_FOLDER`): the first model's
run reads and preprocesses the recordings once and writes the pooled windows there
(:meth:`~neurorvq.data.datamodule.RecordingDataModule.load_all`), the other models and any resumed run read them
back without opening a recording. It holds the row's windows as float32 at the modality's rate (about the size of
the preprocessed data: High-Gamma's ~15 GB of 500-Hz EDF give a few GB); delete the folder to reclaim the space (a
new run rebuilds it). A recipe or a pass-through override that sets ``data.init_args.cache_dir`` itself is left
alone, and ``cache=False`` (``--cache false``) passes none. The added override is left out of the run's identity
(``cv.json``, :class:`BenchmarkCV`): the cache holds exactly the windows an in-memory load gives, so runs made
before the cache existed, or with ``--cache false``, are reused or resumed as they are, and a run may switch between
the two.

Resuming: the runner resumes fold by fold; a (row, model) whose folder holds a record for every fold and seed
under the same settings is reused without loading its data. Before a (row, model) trains, the row's dataset is
checked (:mod:`neurorvq.benchmarks.data_check`): every problem of every row that would train is reported at once,
before anything trains.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from neurorvq.benchmarks.data_check import recipe_data, require_dataset
from neurorvq.benchmarks.tables import DATASET_SPLIT, Row, Table, data_root, recipe_path, split_path, with_rows
from neurorvq.crossval.runner import CVSettings
from neurorvq.errors import ConfigError

BASELINE_LABELS = {"eegnet": "EEGNet", "shallow_convnet": "ShallowConvNet", "logpower": "log band power + LR",
                   "riemann": "Riemann tangent space + LR", "linear_probe": "linear probe (frozen FM)"}
"""Table labels of the baselines of ``neurorvq cv``."""
MODEL_RECIPE = "model_recipe.yaml"
DATASET_SPLIT_FILE = "split.json"
"""The dataset's own split of a ``split: dataset`` row, as resolved into the run folder."""
DEFAULT_OUT = "runs/benchmarks"
CACHE_FOLDER = "window_cache"
"""The folder of a row's window cache, ``<out>/<table>/<row>/window_cache`` (beside the models' run folders)."""
CACHE_OPTION = "--data.init_args.cache_dir"


@dataclass(frozen=True)
class ModelEntry:
    """One model of a call: its output ``slug``, table ``label``, and what it is: ``fm`` (a checkpoint path for
    ``--model.init_args.fm``), ``model_recipe`` (a YAML whose model section replaces the row's) or ``baseline``."""

    slug: str
    label: str
    fm: str | None = None
    model_recipe: Path | None = None
    baseline: str | None = None


@dataclass
class Job:
    """One (row, model) to run or reuse: the row's recipe, data folder and split file (``n_folds`` folds; its
    ``kind``: ``folds``, ``parts`` or ``dataset``, whose file is written into ``folder`` before the run), and the
    run's output ``folder``."""

    row: Row
    entry: ModelEntry
    recipe: Path
    root: Path
    split: Path
    folder: Path
    n_folds: int
    kind: str = "folds"
    cache_dir: Path | None = None
    """The row's window cache passed to the run (``None``: none added; see the module docstring)."""

    @property
    def group_by(self) -> str:
        """What the split file's values are: the row's column, subjects for the dataset's own split."""
        return "subject" if self.kind == DATASET_SPLIT else self.row.group_by


@dataclass
class BenchmarkSettings:
    """A ``neurorvq benchmark`` call (see :func:`run_benchmark`; a reconstruction table takes ``models``, several
    tokenizers, ``max_windows`` and ``device``: :mod:`neurorvq.benchmarks.recon`)."""

    table: Table
    model: str | None = None
    name: str | None = None
    baselines: list[str] = field(default_factory=list)
    protocol: str = "clean"
    seeds: list[int] | None = None
    out: str | Path = DEFAULT_OUT
    rows: list[str] | None = None
    recipes: str | Path | None = None
    data_dir: str | Path | None = None
    roots: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    figure: bool = True
    models: list[str] = field(default_factory=list)
    max_windows: int | None = 1000
    device: str = "auto"
    cache: bool = True


def slug(text: str) -> str:
    """A folder name from a label: characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "model"


def model_entries(model: str | None, name: str | None, baselines: Sequence[str]) -> list[ModelEntry]:
    """Ours (from ``model``) then the baselines. ``model``: a ``.yaml``/``.yml`` recipe, or a checkpoint file or
    folder (must exist), or an ``hf://`` Hub id."""
    from neurorvq.crossval.runner import BASELINES

    entries: list[ModelEntry] = []
    if model is not None:
        text = str(model)
        path = Path(text).expanduser()
        if text.endswith((".yaml", ".yml")):
            if not path.is_file():
                raise ConfigError(f"--model '{text}': no such recipe file; give a YAML whose model section is the "
                                  "model to fine-tune, or a checkpoint (.pt, .ckpt, a save_pretrained folder)")
            entries.append(ModelEntry(slug(name or path.stem), name or path.stem, model_recipe=path.resolve()))
        elif text.startswith("hf://"):
            label = name or text.rstrip("/").rsplit("/", 1)[-1]
            entries.append(ModelEntry(slug(label), label, fm=text))
        else:
            if not path.exists():
                raise ConfigError(f"--model '{text}': no such file or folder; give the official weights (e.g. "
                                  "NeuroRVQ_EEG_foundation_model_v1.pt), a PretrainTask .ckpt, a save_pretrained "
                                  "folder, or a YAML recipe with a model section")
            label = name or (path.stem if path.is_file() else path.name)
            entries.append(ModelEntry(slug(label), label, fm=str(path.resolve())))
    for baseline in baselines:
        if baseline not in BASELINES:
            from neurorvq.suggest import did_you_mean

            raise ConfigError(f"--baselines: unknown baseline {baseline!r}{did_you_mean(baseline, BASELINES)}; "
                              f"valid: {', '.join(BASELINES)}")
        if baseline == "linear_probe" and (not entries or entries[0].fm is None):
            raise ConfigError("--baselines linear_probe probes the frozen features of --model; give --model as a "
                              "checkpoint (not a model recipe)")
        entries.append(ModelEntry(baseline, BASELINE_LABELS.get(baseline, baseline), baseline=baseline,
                                  fm=entries[0].fm if baseline == "linear_probe" else None))
    if not entries:
        raise ConfigError("nothing to run: give --model (a checkpoint or a model recipe) and/or --baselines "
                          "(e.g. --baselines eegnet logpower)")
    slugs = [e.slug for e in entries]
    twice = sorted({s for s in slugs if slugs.count(s) > 1})
    if twice:
        raise ConfigError(f"two models would share the output folder {twice[0]!r}; label --model with --name")
    return entries


def data_overrides(overrides: Sequence[str]) -> list[str]:
    """``--data.init_args.key=value`` pass-through overrides as ``key=value`` for the data check."""
    out = []
    for arg in overrides:
        key, sep, value = arg.partition("=")
        if sep and key.startswith("--data.init_args."):
            out.append(f"{key.removeprefix('--data.init_args.')}={value}")
    return out


def model_recipe_text(entry: ModelEntry, recipe: Path) -> str:
    """The row's recipe with its model section replaced by the one of ``entry.model_recipe`` (the row's
    ``modality`` and ``num_classes`` kept), as YAML text."""
    import yaml

    from neurorvq.file_io import read_yaml

    config = read_yaml(recipe) or {}
    given = read_yaml(entry.model_recipe, "model recipe") or {}
    section = given.get("model") if isinstance(given, dict) and "model" in given else given
    if not isinstance(section, dict) or "class_path" not in section:
        raise ConfigError(f"--model '{entry.model_recipe}' has no model section with a class_path (a recipe with "
                          "model: {class_path: ..., init_args: ...}, or that mapping alone)")
    original = dict((config.get("model") or {}).get("init_args") or {})
    init_args = dict(section.get("init_args") or {})
    for key in ("modality", "num_classes"):
        if key in original:
            init_args[key] = original[key]
    config["model"] = {"class_path": section["class_path"], "init_args": init_args}
    return (f"# {recipe} with the model section of {entry.model_recipe} (neurorvq benchmark --model)\n"
            + yaml.safe_dump(config, sort_keys=False))


def write_model_recipe(job: Job) -> None:
    """Write ``<folder>/model_recipe.yaml`` of a job whose model is a recipe (before it runs). A changed text under a
    run that already has trained folds is refused: those folds were trained with the other model."""
    if job.entry.model_recipe is None:
        return
    path = job.folder / MODEL_RECIPE
    text = model_recipe_text(job.entry, job.recipe)
    if path.is_file() and path.read_text() != text and any(job.folder.glob("fold_*")):
        raise ConfigError(f"'{path}' was written from another model or row recipe and {job.folder} holds trained "
                          "folds; use another --out or --name, or delete that folder to train again")
    job.folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def row_overrides(entry: ModelEntry, root: Path, overrides: Sequence[str]) -> list[str]:
    """The recipe overrides of one (row, model): the data root, ours' checkpoint, then the pass-through ones."""
    extra = [f"--data.init_args.root={root}"]
    if entry.fm is not None:
        extra.append(f"--model.init_args.fm={entry.fm}")
    return [*extra, *overrides]


def sets_cache_dir(recipe: Path, overrides: Sequence[str]) -> bool:
    """Whether the row's recipe (its ``data.init_args``, even as ``null``) or a pass-through override sets
    ``cache_dir`` itself."""
    if "cache_dir" in recipe_data(recipe)["init_args"]:
        return True
    return any(arg.partition("=")[0] in (CACHE_OPTION, "--data.cache_dir") for arg in overrides)


def cache_override(job: Job) -> list[str]:
    """The window-cache override of a job (``[]`` when it has none)."""
    return [] if job.cache_dir is None else [f"{CACHE_OPTION}={job.cache_dir}"]


@dataclass
class BenchmarkCV(CVSettings):
    """:class:`~neurorvq.crossval.runner.CVSettings` of a benchmark run whose identity (``cv.json``) leaves out
    ``window_cache``, the cache override the benchmark adds by default: the cache does not change the windows, so runs
    made without it (before it existed, or with ``--cache false``) stay reusable and resumable."""

    window_cache: str | None = None

    def identity(self) -> dict[str, Any]:
        identity = super().identity()
        if self.window_cache is not None:
            identity["overrides"] = [o for o in identity["overrides"] if o != self.window_cache]
        return identity


def cv_settings(settings: BenchmarkSettings, job: Job) -> Any:
    """The :class:`~neurorvq.crossval.runner.CVSettings` (a :class:`BenchmarkCV`) of one (row, model); a model
    recipe's run reads ``<folder>/model_recipe.yaml`` (:func:`write_model_recipe`). The row's window cache override
    comes right after the data root and stays out of the run's identity."""
    from neurorvq.crossval.protocol import PARITY

    recipe = job.folder / MODEL_RECIPE if job.entry.model_recipe is not None else job.recipe
    parity = settings.protocol == PARITY
    overrides = row_overrides(job.entry, job.root, settings.overrides)
    cache = cache_override(job)
    return BenchmarkCV(recipe=str(recipe), overrides=[*overrides[:1], *cache, *overrides[1:]],
                       window_cache=cache[0] if cache else None,
                       n_folds=job.n_folds, folds_file=str(job.split), group_by=job.group_by,
                       val_group_by=job.row.val_group_by if job.kind != DATASET_SPLIT else None,
                       val_fraction=0.0 if parity else 0.1, protocol=settings.protocol,
                       balance_per_subject=job.row.balance_per_subject if parity else None, unlisted="drop",
                       seeds=list(settings.seeds) if settings.seeds else None, baseline=job.entry.baseline,
                       name=job.entry.label, require_all_classes=job.row.all_classes_in_test)


def finished(job: Job, cv: Any) -> bool:
    """Whether the job's folder holds a complete run of ``cv``: the same settings (``cv.json``; for a model recipe
    also the same ``model_recipe.yaml`` text), a summary, and a record for every fold and seed."""
    from neurorvq.crossval.report import read_records

    folder = job.folder
    identity = folder / "cv.json"
    if not identity.is_file() or not (folder / "summary.json").is_file():
        return False
    if job.entry.model_recipe is not None:
        path = folder / MODEL_RECIPE
        if not path.is_file() or path.read_text() != model_recipe_text(job.entry, job.recipe):
            return False
    if json.loads(identity.read_text()) != json.loads(json.dumps(cv.identity())):
        return False  # the runner then names what changed
    runs = {(int(r["fold"]), r.get("seed")) for r in read_records(folder)}
    return len(runs) >= cv.n_folds * max(1, len(cv.seeds or []))


def _check_classes(row: Row, recipe: Path) -> None:
    from neurorvq.file_io import read_yaml

    if row.classes is None:
        return
    config = read_yaml(recipe) or {}
    classes = ((config.get("model") or {}).get("init_args") or {}).get("num_classes")
    if classes is not None and int(classes) != row.classes:
        raise ConfigError(f"row '{row.key}': recipe {recipe} has model.init_args.num_classes {classes}, but the "
                          f"table says the task has {row.classes} classes; fix the recipe or the table")


def resolve_dataset_split(recipe: Path, root: Path, data_overrides: Sequence[str], path: Path) -> Path:
    """Write the DataModule's own split (its ``default_split``, e.g. Discrete Gestures' corpus CSV: users to train /
    val / test) as a parts split file by subject at ``path``, resolved without loading a signal
    (:meth:`~neurorvq.data.datamodule.RecordingDataModule.resolve_plan`); an existing file is kept (the run's
    ``folds.json`` was made from it). :class:`ConfigError` when the DataModule has no split of its own or its test
    part is empty."""
    from neurorvq.commands import load_datamodule
    from neurorvq.data.split_files import save_split_file

    if path.is_file():
        return path
    datamodule = load_datamodule(str(recipe), [f"root={root}", *data_overrides])
    if not hasattr(datamodule, "resolve_plan"):
        raise ConfigError(f"recipe {recipe}: {type(datamodule).__name__} is not a RecordingDataModule; give the row a "
                          "split file instead of 'dataset'")
    plan = datamodule.resolve_plan()  # finds the recordings (the rule may depend on them), reads nothing else
    if datamodule.split_rule() is None:
        raise ConfigError(f"recipe {recipe}: {type(datamodule).__name__} has no published split of its own (no "
                          "default_split under these options); give the row a split file instead of 'dataset'")
    parts = {part: list(datamodule.splits.get(part, [])) for part in ("train", "val", "test")}
    if not parts["test"] or not parts["train"]:
        raise ConfigError(f"recipe {recipe}: the {type(datamodule).__name__} split under {root} has "
                          f"{len(parts['train'])} train and {len(parts['test'])} test subjects; it needs both (is the "
                          "dataset complete?)")
    summary = plan.summary()
    by = summary.get("by", "subject")
    source = (f"{type(datamodule).__name__}'s own split ({'by ' + by if by != 'subject' else 'by subject'}"
              + (f", {summary['file']}" if summary.get("file") else "") + f") resolved under {root}; "
              f"written by neurorvq benchmark (subjects in no part: {len(plan.excluded)} {by} value(s) excluded)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_split_file(path, by="subject", splits=parts, source=source)


def plan_jobs(settings: BenchmarkSettings, entries: Sequence[ModelEntry]) -> list[Job]:
    """The (row, model) jobs of a call, rows in table order; a row without a recipe is an error naming it."""
    from neurorvq.benchmarks.tables import split_folds, split_kind

    rows = with_rows(settings.table, settings.rows)
    unknown = sorted(set(settings.roots) - {r.key for r in settings.table.rows})
    if unknown:
        raise ConfigError(f"--root {unknown[0]}=...: table '{settings.table.key}' has no row {unknown[0]!r} (rows: "
                          f"{', '.join(r.key for r in settings.table.rows)})")
    waiting = [r.key for r in rows if not r.available]
    if waiting:
        ready = [r.key for r in rows if r.available]
        raise ConfigError(f"table '{settings.table.key}': rows {waiting} are not yet available (no recipe)"
                          + (f"; run the others with --rows {' '.join(ready)}" if ready else "")
                          + " (neurorvq benchmark --list shows every row)")
    jobs = []
    for row in rows:
        recipe = recipe_path(settings.table, row, settings.recipes)
        if not recipe.is_file():
            raise ConfigError(f"row '{row.key}': recipe {recipe} does not exist; give the folder holding the benchmark "
                              "recipes with --recipes DIR (the checkout's recipes/benchmarks by default)")
        _check_classes(row, recipe)
        kind = split_kind(settings.table, row)
        n_folds = split_folds(settings.table, row)
        recipe_root = recipe_data(recipe)["init_args"].get("root")
        root = data_root(settings.table, row, settings.data_dir, settings.roots, recipe_root)
        row_folder = Path(settings.out) / settings.table.key / row.key
        cache_dir = row_folder / CACHE_FOLDER if settings.cache and not sets_cache_dir(recipe, settings.overrides) \
            else None
        for entry in entries:
            if entry.model_recipe is not None:
                model_recipe_text(entry, recipe)  # a bad model recipe fails before anything trains
            if cache_dir is not None and entry.slug == CACHE_FOLDER:
                raise ConfigError(f"model {entry.label!r} would write into the row's window cache folder "
                                  f"'{CACHE_FOLDER}'; label it otherwise with --name (or turn the cache off with "
                                  "--cache false)")
            folder = row_folder / entry.slug
            split = folder / DATASET_SPLIT_FILE if kind == DATASET_SPLIT else split_path(settings.table, row)
            jobs.append(Job(row, entry, recipe, root, split, folder, n_folds, kind, cache_dir))
    return jobs


def say(message: str) -> None:
    print(f"[neurorvq benchmark] {message}", flush=True)


def run_benchmark(settings: BenchmarkSettings) -> dict[str, Any]:
    """Run (or resume) every (row, model) of the call, then write ``table.md``, ``table.csv`` and ``table.png`` in
    ``<out>/<table>/``; returns ``{"results": [...], "files": {...}}``
    (:func:`neurorvq.benchmarks.report.write_report`)."""
    from neurorvq.crossval.protocol import PROTOCOLS
    from neurorvq.crossval.runner import run_cv

    if settings.table.kind == "reconstruction":
        from neurorvq.benchmarks.recon import run_reconstruction

        if not settings.cache:
            raise ConfigError(f"--cache applies to the fine-tuning tables; table '{settings.table.key}' reconstructs: "
                              "leave --cache out")
        return run_reconstruction(settings)
    if settings.max_windows != 1000 or settings.device != "auto":
        raise ConfigError(f"--max_windows and --device apply to the reconstruction table; table "
                          f"'{settings.table.key}' fine-tunes (its device is the recipes' trainer.accelerator)")
    if len(settings.models) > 1:
        raise ConfigError(f"table '{settings.table.key}' fine-tunes one --model per call (got {len(settings.models)}); "
                          "run the command once per model into the same --out (each with its --name): the table "
                          "gathers every model's rows")
    if settings.models and settings.model is None:
        settings.model = settings.models[0]
    if settings.protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol {settings.protocol!r}: use one of {', '.join(PROTOCOLS)}")
    entries = model_entries(settings.model, settings.name, settings.baselines)
    jobs = plan_jobs(settings, entries)
    prepared = [(job, cv_settings(settings, job)) for job in jobs]
    pending = [(job, cv) for job, cv in prepared if not finished(job, cv)]
    waiting = {id(job) for job, _ in pending}
    problems, checked = [], set()
    for job, _ in pending:  # every missing dataset at once, before anything trains
        if job.row.key in checked:
            continue
        checked.add(job.row.key)
        try:
            require_dataset(settings.table, job.row, job.recipe, job.root,
                            None if job.kind == DATASET_SPLIT else job.split, data_overrides(settings.overrides))
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        tail = " | neurorvq benchmark --list shows which datasets are present; --rows runs a subset" \
            if len(problems) > 1 else ""
        raise ConfigError(" | ".join(problems) + tail)
    say(f"table '{settings.table.key}': {len({j.row.key for j in jobs})} row(s) x {len(entries)} model(s), protocol "
        f"{settings.protocol}, {len(pending)} to run, {len(jobs) - len(pending)} already finished -> "
        f"{Path(settings.out) / settings.table.key}")
    for n, (job, cv) in enumerate(prepared, 1):
        label = f"{n}/{len(prepared)} row '{job.row.key}' ({job.row.task}), {job.entry.label}"
        if id(job) not in waiting:
            say(f"{label}: already finished (reused from {job.folder})")
            continue
        if job.kind == DATASET_SPLIT:
            resolve_dataset_split(job.recipe, job.root, data_overrides(settings.overrides), job.split)
        shown = f"{job.n_folds} folds of" if job.n_folds > 1 else "the one split of"
        say(f"{label}: {shown} {job.split.name} on {job.root} -> {job.folder}")
        write_model_recipe(job)
        run_cv(cv, job.folder, task=job.row.task)
    from neurorvq.benchmarks.report import write_report

    return write_report(settings.table, entries, Path(settings.out), settings.protocol, figure=settings.figure)


__all__ = ["BASELINE_LABELS", "BenchmarkCV", "BenchmarkSettings", "CACHE_FOLDER", "DATASET_SPLIT_FILE", "Job",
           "ModelEntry", "cache_override", "cv_settings", "data_overrides", "finished", "model_entries",
           "model_recipe_text", "plan_jobs", "resolve_dataset_split", "row_overrides", "run_benchmark", "say",
           "sets_cache_dir", "slug", "write_model_recipe"]
