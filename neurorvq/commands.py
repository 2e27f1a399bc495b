"""Project commands beside LightningCLI's fit/validate/test/predict: ``tokenize``, ``reconstruct``, ``demo``."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch

from neurorvq.errors import ConfigError
from neurorvq.file_io import json_ready, read_yaml, write_atomic
from neurorvq.tasks.channels import ChannelRows, model_ids

SPLITS = ("train", "val", "test", "predict")


# ------------------------------------------------------------------------------------ shared helpers
def load_datamodule(data: str, overrides: Sequence[str] = ()):
    """Instantiate the DataModule of ``data``: a recipe YAML (its ``data:`` section) or a data YAML with
    ``class_path``/``init_args``. ``overrides`` are ``key=value`` strings for ``init_args`` (YAML values)."""
    import lightning as L
    import yaml
    from jsonargparse import ArgumentParser

    path = Path(data)
    if not path.is_file():
        raise ConfigError(f"--data '{data}' is not a file: give a recipe YAML or a data YAML with class_path")
    config = read_yaml(path, "data file") or {}
    section = config.get("data", config)
    if not isinstance(section, dict) or "class_path" not in section:
        raise ConfigError(f"'{data}' has no data class_path (expected a recipe with a 'data:' section, or "
                          "class_path/init_args at the top)")
    section = {"class_path": section["class_path"], "init_args": dict(section.get("init_args") or {})}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set '{item}' is not key=value")
        key, value = item.split("=", 1)
        section["init_args"][key.removeprefix("data.").removeprefix("init_args.")] = yaml.safe_load(value)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    namespace = parser.parse_object({"data": section})
    return parser.instantiate_classes(namespace).data


def _stage(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"--split '{split}' is not one of {SPLITS}")
    return {"train": "fit", "val": "validate", "test": "test", "predict": "predict"}[split]


def split_loader(datamodule, split: str):
    """The DataLoader of ``split`` (``train | val | test | predict``) of ``datamodule``, set up for it."""
    datamodule.setup(_stage(split))
    return getattr(datamodule, f"{split}_dataloader")()


class SplitData(L.LightningDataModule):
    """A DataModule whose predict loader is ``split``'s loader of ``datamodule`` (set up for that split), so that
    ``trainer.predict`` runs over any split. ``spec`` and the window facts that compatibility checks read
    (:mod:`neurorvq.compat`) are the wrapped DataModule's."""

    FORWARDED = ("spec", "window_samples", "window_seconds", "channel_names_used")

    def __init__(self, datamodule: L.LightningDataModule, split: str) -> None:
        super().__init__()
        self.stage = _stage(split)
        self.inner, self.split = datamodule, split

    def __getattr__(self, name: str) -> Any:
        if name in self.FORWARDED and "inner" in self.__dict__:
            return getattr(self.__dict__["inner"], name)
        raise AttributeError(f"{type(self).__name__} has no attribute '{name}'")

    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str) -> None:
        self.inner.setup(self.stage)

    def predict_dataloader(self) -> Any:
        return getattr(self.inner, f"{self.split}_dataloader")()


def check_compatible(tokenizer, datamodule, ckpt: str):
    """Refuse data whose signal does not fit the tokenizer (rate, unit, patch length, channels, window length:
    :mod:`neurorvq.compat`); returns the channel translation (:class:`~neurorvq.tasks.channels.ChannelRows`, None
    when the data's ids are the tokenizer's rows)."""
    from neurorvq.tasks.tokens import data_headline

    if getattr(datamodule, "spec", None) is None:
        raise ConfigError(f"{type(datamodule).__name__} has no 'spec' (ModalitySpec): cannot check it against "
                          f"the tokenizer")
    return ChannelRows.bind(datamodule, tokenizer, headline=data_headline(ckpt, tokenizer, datamodule))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def trainer_devices(device: str = "auto", accelerator: str | None = None,
                    devices: int | str | list[int] | None = None) -> tuple[str, int | str | list[int]]:
    """Lightning's ``(accelerator, devices)`` for a project command: explicit ``accelerator``/``devices`` win;
    otherwise ``device`` (``auto | cpu | cuda | cuda:N``) gives one device, as the commands did before they ran
    through a Trainer."""
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    if accelerator is None:
        if device == "auto" or device == "cpu":
            accelerator = device
        elif device == "cuda" or device.startswith("cuda:"):
            accelerator = "gpu"
            index = device.partition(":")[2]
            if index and devices is None:
                if not index.isdigit():
                    raise ConfigError(f"--device '{device}': give cuda:N with N a GPU number, e.g. cuda:0")
                devices = [int(index)]
        else:
            raise ConfigError(f"--device '{device}' is not auto, cpu, cuda or cuda:N")
    return accelerator, 1 if devices is None else devices


# ------------------------------------------------------------------------------------ tokenize
def tokenize(ckpt: str, data: str, out: str, split: str = "test", overwrite: bool = False,
             shard_windows: int = 4096, max_batches: int | None = None, device: str = "auto",
             overrides: Sequence[str] = (), accelerator: str | None = None,
             devices: int | str | list[int] | None = None, strategy: str = "auto") -> Path:
    """Write the token ids of a dataset split to ``out`` (format: :mod:`neurorvq.token_files`), through the
    tokenizer protocol (``tokenize``: ids of every stream of its layout plus its side information), in Lightning's
    prediction loop (:class:`~neurorvq.tasks.tokens.TokenExtractionTask`, :class:`~neurorvq.tasks.tokens.
    TokenWriter`): on ``devices`` of ``accelerator`` (several: one shard series per rank) or, by default, on one
    ``device``; ``max_batches`` batches per process at most. Other files in ``out`` are kept."""
    from neurorvq.shard_folder import ShardFolder
    from neurorvq.tasks.tokens import TokenExtractionTask, TokenWriter, token_identity
    from neurorvq.token_files import FOLDER, OVERWRITE, read_manifest

    if int(shard_windows) < 1:
        raise ConfigError(f"--shard_windows is {shard_windows}; give at least 1")
    if max_batches is not None and max_batches < 0:
        raise ConfigError(f"--max_batches is {max_batches}; give 0 or more (or leave it out for all)")
    task = TokenExtractionTask(ckpt)
    datamodule = SplitData(load_datamodule(data, overrides), split)
    check_compatible(task.tokenizer, datamodule.inner, ckpt)
    # before the data is prepared (which may take long); the writer checks again on every rank
    ShardFolder(out, FOLDER).check_writable(token_identity(task.tokenizer), overwrite, OVERWRITE)
    accelerator, devices = trainer_devices(device, accelerator, devices)
    trainer = L.Trainer(accelerator=accelerator, devices=devices, strategy=strategy, logger=False,
                        enable_checkpointing=False, enable_model_summary=False,
                        limit_predict_batches=max_batches,
                        callbacks=[TokenWriter(out, shard_windows, overwrite, split=split)])
    trainer.predict(task, datamodule=datamodule, return_predictions=False)
    if trainer.is_global_zero:
        manifest = read_manifest(out)
        print(f"tokenize: wrote {manifest['windows']} windows in {len(manifest['shards'])} shard(s) to {out}")
    return Path(out)


# ------------------------------------------------------------------------------------ reconstruct
def _checkpoint_folder(ckpt: str) -> Path | None:
    """The folder a checkpoint's outputs belong in: a file's parent, a ``save_pretrained`` folder itself, None for
    a Hub id (nothing local)."""
    path = Path(ckpt)
    if path.is_dir():
        return path
    return path.parent if path.is_file() else None


def _checkpoint_label(ckpt: str) -> str:
    """Short name of a checkpoint for titles: its file or folder name, or the Hub id."""
    path = Path(ckpt)
    return path.name if path.exists() else str(ckpt)


def reconstruct_output_folder(ckpt: str) -> Path:
    """Where ``reconstruct``'s "auto" outputs go: beside the checkpoint (see :func:`_checkpoint_folder`) when that
    folder is writable, else ``runs/reconstruct/<checkpoint stem>`` under the current folder (said on stdout)."""
    folder = _checkpoint_folder(ckpt)
    if folder is not None and os.access(folder, os.W_OK):
        return folder
    stem = (Path(ckpt).name if folder is None or Path(ckpt).is_dir() else Path(ckpt).stem) or "checkpoint"
    fallback = Path("runs") / "reconstruct" / stem
    why = f"the checkpoint's folder '{folder}' is not writable" if folder is not None else \
        f"'{ckpt}' is not a local file or folder"
    print(f"reconstruct: {why}; writing outputs to '{fallback}' instead")
    return fallback


def _output_paths(ckpt: str, split: str, figure: str | None, report: str | None) -> tuple[Path | None, Path | None]:
    """Resolve ``figure``/``report`` ("auto", None or a path) to paths; the folder is computed only if needed."""
    folder: Path | None = None

    def auto(suffix: str) -> Path:
        nonlocal folder
        folder = folder or reconstruct_output_folder(ckpt)
        return folder / f"reconstruction_{split}{suffix}"

    figure_path = None if not figure else auto(".png") if figure == "auto" else Path(figure)
    if not report:
        return figure_path, None
    if report == "auto":
        return figure_path, figure_path.with_suffix(".json") if figure_path is not None else auto(".json")
    return figure_path, Path(report)


def _source(name: str) -> str:
    """Absolute path of a local file or folder (so a report read elsewhere still names it); a Hub id unchanged."""
    path = Path(name)
    return str(path.resolve()) if path.exists() else name


def reconstruct(ckpt: str, data: str, split: str = "test", max_batches: int | None = None,
                figure: str | None = "auto", device: str = "auto", overrides: Sequence[str] = (),
                report: str | None = "auto") -> dict[str, float]:
    """Reconstruct a split; print raw and per-band MSE (method.md §7.1) and the codebook usage on the split
    (:mod:`neurorvq.eval.codebook`); write a figure of the split's first window and a JSON report of the printed
    tables with their context (checkpoint, data, split, windows counted). Returns the MSE table.

    ``figure``: "auto" = ``reconstruction_<split>.png`` beside the checkpoint (a file's folder, or inside a
    ``save_pretrained`` folder), or under ``runs/reconstruct/<checkpoint stem>/`` when that folder is not writable
    or the checkpoint is a Hub id; None = no figure; anything else = that path. ``report``: "auto" = the figure's
    path with ``.json`` (the "auto" folder when there is no figure); None = no report; anything else = that path.
    """
    from neurorvq.eval.bands import BandErrors, format_table
    from neurorvq.eval.codebook import CodebookUsage, format_usage
    from neurorvq.eval.figures import window_mse
    from neurorvq.tasks.tokenizer import load_tokenizer
    from neurorvq.token_files import weights_hash

    tokenizer = load_tokenizer(ckpt).eval()
    datamodule = load_datamodule(data, overrides)
    rows = check_compatible(tokenizer, datamodule, ckpt)
    dev = _device(device)
    tokenizer.to(dev)
    spec = tokenizer.signal  # the signal: name, rate, unit, vocabulary, report bands (any family)
    errors = BandErrors(spec.bands, spec.sampling_rate)
    usage: CodebookUsage | None = None
    first: dict[str, Any] | None = None
    windows = batches = 0
    with torch.no_grad():
        for i, batch in enumerate(split_loader(datamodule, split)):
            if max_batches is not None and i >= max_batches:
                break
            x = batch["signal"].to(dev)
            channel_ids = model_ids(rows, batch["channel_ids"].to(dev))
            rec, outputs = tokenizer(x, channel_ids)
            errors.update(x.double().cpu().numpy(), rec.double().cpu().numpy())
            if usage is None:
                usage = CodebookUsage(tokenizer.layout)
            usage.update(outputs["ids"])
            windows += x.shape[0]
            batches += 1
            if first is None:
                subject = batch.get("subject")
                first = {"signal": x[0].cpu().numpy(), "reconstruction": rec[0].cpu().numpy(),
                         "channel_ids": channel_ids.reshape(-1, x.shape[1])[0].tolist(),
                         "subject": int(subject.reshape(-1)[0]) if torch.is_tensor(subject) else None}
    table = errors.table()
    print(format_table(table, f"reconstruction MSE, {split} split, standardised signals ({spec.name})"))
    usage_table = usage.table() if usage is not None else None
    if usage_table is not None:
        print("\n" + format_usage(usage_table, f"codebook usage on the {split} split: share of codes used "
                                   "(perplexity)"))
    figure_path, report_path = _output_paths(ckpt, split, figure, report)
    shown: dict[str, Any] | None = None
    if first is not None:
        names = [tokenizer.contract.channels[i] for i in first["channel_ids"]]
        shown = {"window": 0, "subject": first["subject"], "channels": names,
                 "mse": window_mse(first["signal"], first["reconstruction"])}
    if figure_path is not None and shown is not None:
        _write_figure(figure_path, first, shown, split, _checkpoint_label(ckpt), spec)
        print(f"figure written to {figure_path}")
    if report_path is not None:
        result = {"checkpoint": _source(ckpt), "family": tokenizer.family, "config_hash": tokenizer.config_hash(),
                  "weights_hash": weights_hash(tokenizer), "data": _source(data), "overrides": list(overrides),
                  "split": split, "windows": windows, "batches": batches, "max_batches": max_batches,
                  "modality": spec.name, "unit": spec.unit, "sampling_rate": spec.sampling_rate, "mse": table,
                  "mse_definition": "per-window standardised signals; bands: zero-phase Butterworth of order 2 "
                                    "(method.md §7.1)",
                  "bands": [list(b) for b in spec.bands], "codebook_usage": usage_table,
                  "figure": None if figure_path is None or shown is None else {"path": str(figure_path.resolve()),
                                                                               **shown},
                  "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        report_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(report_path, json.dumps(json_ready(result, finite=True), indent=2, ensure_ascii=False) + "\n")
        print(f"report written to {report_path}")
    return table


def _write_figure(path: Path, first: dict[str, Any], shown: dict[str, Any], split: str, checkpoint: str,
                  spec) -> None:
    """Save the first window's figure (signals in the spec's unit, as the data yields them) to ``path``."""
    import matplotlib.pyplot as plt

    from neurorvq.eval.figures import reconstruction_figure, reconstruction_title

    title = reconstruction_title(split, window=shown["window"], subject=shown["subject"], checkpoint=checkpoint,
                                 mse=shown["mse"])
    fig = reconstruction_figure(first["signal"], first["reconstruction"], shown["channels"], spec.sampling_rate,
                                max_channels=4, title=title, unit=spec.unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------ demo
def demo(modality: str = "eeg", channels: int = 16, seconds: float = 4.0, batch: int = 2, seed: int = 0) -> float:
    """Encode and reconstruct generated signals with a freshly initialised tokenizer; returns the MSE."""
    from neurorvq import NeuroRVQTokenizer, get_modality
    from neurorvq.nn.spectral import per_sample_standardize

    spec = get_modality(modality)
    torch.manual_seed(seed)
    model = NeuroRVQTokenizer(spec).eval()
    names = list(spec.channels[:channels])
    n = int(seconds * spec.sampling_rate) // spec.patch_length * spec.patch_length
    t = torch.arange(n) / spec.sampling_rate
    x = 20.0 * torch.sin(2 * torch.pi * 10.0 * t) + 10.0 * torch.randn(batch, len(names), n).cumsum(-1) / n ** 0.5
    layout = model.layout
    print(f"modality {spec.name}: {len(names)} channels x {n / spec.sampling_rate:g} s at {spec.sampling_rate:g} Hz, "
          f"batch {batch}; tokenizer with {model.num_parameters():,} trainable parameters and "
          f"{len(layout.groups)} code groups x {layout.depths[0]} levels of {layout.max_codebook_size} codes")
    start = time.perf_counter()
    encoded = model.tokenize(x, names)
    rec = model.detokenize(encoded, names)
    elapsed = time.perf_counter() - start
    mse = torch.mean((per_sample_standardize(rec)[0] - per_sample_standardize(x)[0]) ** 2).item()
    print(f"ids {tuple(encoded.ids.shape)} [batch, stream ({' '.join(layout.stream_names[:2])} ...), "
          f"channel*patch]; reconstruction {tuple(rec.shape)}")
    print(f"encode + decode: {elapsed:.2f} s; MSE of standardised signals (untrained model): {mse:.3f}")
    return mse
