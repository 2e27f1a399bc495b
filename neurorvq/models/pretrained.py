"""``save_pretrained`` / ``from_pretrained``: a config JSON plus safetensors weights, locally or on the Hub."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from neurorvq.errors import CheckpointError
from neurorvq.file_io import load_safetensors, torch_load, write_atomic, write_safetensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
OFFICIAL_REPO_ID = "ntinosbarmpas/NeuroRVQ"
# Official checkpoint files in OFFICIAL_REPO_ID, by model kind and modality (official-state-dict.md).
OFFICIAL_FILES = {
    ("tokenizer", "eeg"): "pretrained_models/tokenizers/NeuroRVQ_EEG_tokenizer_v1.pt",
    ("foundation_model", "eeg"): "pretrained_models/foundation_models/NeuroRVQ_EEG_foundation_model_v1.pt",
}


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly ``model``'s keys and shapes.

    The message names the first mismatching key with both shapes, or lists missing/unexpected keys.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    for key, tensor in own.items():
        if key in state_dict and tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{source}: '{key}' has shape {tuple(state_dict[key].shape)} but this model expects "
                f"{tuple(tensor.shape)}; the checkpoint comes from another configuration. Build the model with "
                "the checkpoint's config (from_pretrained reads it) or pass matching overrides")
    if missing or unexpected:
        raise CheckpointError(f"{source}: missing keys {missing[:20]}{' ...' if len(missing) > 20 else ''}; "
                              f"unexpected keys {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a torch ``.pt``/``.pth``/``.ckpt`` file (``weights_only``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file '{path}' does not exist")
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    obj = torch_load(path, weights_only=True)
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"'{path}' holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


class PretrainedMixin:
    """Adds ``save_pretrained``/``from_pretrained`` to a model exposing ``config()``, ``spec`` and
    ``model_kind``, constructible as ``cls(NeuroRVQSpec.from_dict(spec), **options)``."""

    model_kind: str = "model"

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed)."""
        from neurorvq import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"kind": self.model_kind, "neurorvq_version": __version__, **self.config()}
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        # weights first: a failure between the two writes must not leave a new config beside old weights
        write_safetensors(directory / WEIGHTS_NAME, state, {"kind": self.model_kind})
        write_atomic(directory / CONFIG_NAME, json.dumps(config, indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **overrides: Any):
        """Load from a ``save_pretrained`` folder, a Hub repo holding one, or the official repo id
        (``"ntinosbarmpas/NeuroRVQ"``, downloaded with ``huggingface_hub``; ``modality=`` picks the file)."""
        from neurorvq.families.neurorvq_spec import NeuroRVQSpec

        path = Path(name_or_path)
        if not path.is_dir():
            if str(name_or_path) == OFFICIAL_REPO_ID:
                modality = str(overrides.pop("modality", "eeg"))
                filename = OFFICIAL_FILES.get((cls.model_kind, modality))
                if filename is None:
                    raise CheckpointError(f"no official {cls.model_kind} checkpoint is known for modality "
                                          f"'{modality}'; known: {sorted(OFFICIAL_FILES)}")
                return cls.from_official(_hub_download(str(name_or_path), filename), modality, **overrides)
            if not (isinstance(name_or_path, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", name_or_path)):
                raise CheckpointError(f"'{name_or_path}' is not a save_pretrained folder (with {CONFIG_NAME} and "
                                      f"{WEIGHTS_NAME}) nor a Hub repo id")
            path = Path(_hub_download(str(name_or_path), CONFIG_NAME)).parent
            _hub_download(str(name_or_path), WEIGHTS_NAME)
        config_file, weights_file = path / CONFIG_NAME, path / WEIGHTS_NAME
        for f in (config_file, weights_file):
            if not f.is_file():
                raise CheckpointError(f"'{path}' lacks {f.name}; it must hold {CONFIG_NAME} and {WEIGHTS_NAME} "
                                      "written by save_pretrained")
        try:
            config = json.loads(config_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CheckpointError(f"'{config_file}' cannot be read as JSON ({error}): the file is damaged; write the "
                                  "folder again with save_pretrained or use another copy") from None
        if config.get("kind") != cls.model_kind:
            raise CheckpointError(f"'{path}' holds a {config.get('kind')!r}, not a {cls.model_kind!r}")
        spec = NeuroRVQSpec.from_dict(config["spec"])
        model = cls(spec, **{**config.get("options", {}), **overrides})
        state = read_state_dict(weights_file)
        check_state_dict(model, state, str(weights_file))
        model.load_state_dict(state)
        return model


def _hub_download(repo_id: str, filename: str) -> str:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # optional extra
        raise CheckpointError("downloading from the Hugging Face Hub needs huggingface_hub: "
                              "pip install 'neurorvq[hub]'") from exc
    return hf_hub_download(repo_id=repo_id, filename=filename)
