"""``save_pretrained`` / ``from_pretrained``: a config JSON plus safetensors weights, locally or on the Hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from neurorvq.errors import CheckpointError
from neurorvq.file_io import load_safetensors, torch_load, write_atomic, write_safetensors
from neurorvq.hub import OFFICIAL_REPO_ID

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Official checkpoint files in OFFICIAL_REPO_ID, by model kind and modality (official-state-dict.md).
OFFICIAL_FILES = {
    ("tokenizer", "eeg"): "pretrained_models/tokenizers/NeuroRVQ_EEG_tokenizer_v1.pt",
    ("foundation_model", "eeg"): "pretrained_models/foundation_models/NeuroRVQ_EEG_foundation_model_v1.pt",
}


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly ``model``'s keys and shapes.

    The message names the first key, in the checkpoint's order, whose shape differs from the model's (with both
    shapes); only when every shared key fits does it list the missing and unexpected keys.
    """
    own = model.state_dict()
    for key, tensor in state_dict.items():
        if key in own and tuple(tensor.shape) != tuple(own[key].shape):
            raise CheckpointError(
                f"{source}: '{key}' has shape {tuple(tensor.shape)} but this model expects "
                f"{tuple(own[key].shape)}; the checkpoint comes from another configuration. Build the model with "
                "the checkpoint's config (neurorvq.load reads it) or pass matching overrides")
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
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
    return dict(unwrap_state_dict(torch_load(path, weights_only=True), str(path)))


def unwrap_state_dict(obj: Any, source: str) -> Mapping[str, Any]:
    """The state dict inside what a torch file held (``{"state_dict": ...}``, ``{"model": ...}`` and ``{"module":
    ...}`` wrappers are opened); :class:`CheckpointError` naming ``source`` when it is not a mapping."""
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"'{source}' holds a {type(obj).__name__}, not a state dict")
    return obj


def without_ddp_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` without the ``module.`` prefix a DDP wrapper puts on every key (unchanged when not every key has
    it)."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


class PretrainedMixin:
    """Adds ``save_pretrained``/``from_pretrained`` to a model exposing ``config()``, ``spec``, ``family``,
    ``model_kind`` and the classmethod ``from_config(config, **overrides)``."""

    model_kind: str = "model"
    family: str = ""

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` (kind, family, version, the model's config) and ``model.safetensors`` into
        ``directory`` (created if needed)."""
        from neurorvq import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {"kind": self.model_kind, "family": self.family, "neurorvq_version": __version__, **self.config()}
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        # weights first: a failure between the two writes must not leave a new config beside old weights
        write_safetensors(directory / WEIGHTS_NAME, state, {"kind": self.model_kind})
        write_atomic(directory / CONFIG_NAME, json.dumps(config, indent=2))
        return directory

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **overrides: Any):
        """This class's model from any source :func:`neurorvq.load` reads (a ``save_pretrained`` folder, a ``.ckpt``,
        an official file, ``hf://owner/name``), and from a bare Hub repo id ``owner/name`` when no such local path
        exists (the Hugging Face convention; ``"ntinosbarmpas/NeuroRVQ"`` gives the official weights, ``modality=``
        picks the file). ``overrides`` are :func:`neurorvq.load`'s keywords and the model's fields and options."""
        from neurorvq.hub import HUB_SCHEME, HubError, looks_like_repo_id
        from neurorvq.loading import load

        source: Any = name_or_path
        bare = (isinstance(name_or_path, str) and looks_like_repo_id(name_or_path)
                and name_or_path != OFFICIAL_REPO_ID and not Path(name_or_path).exists())
        if bare:
            source = HUB_SCHEME + name_or_path
        try:
            model = load(source, kind=cls.model_kind, family=cls.family or None, **overrides)
        except HubError as error:
            if not bare:
                raise
            raise HubError(f"{error} ('{name_or_path}' is no local path either; relative paths start at "
                           f"{Path.cwd()})") from None
        if not isinstance(model, cls):
            raise CheckpointError(f"'{name_or_path}' holds a {type(model).__name__}, not a {cls.__name__}")
        return model
