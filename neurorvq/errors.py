"""Exception families. Messages name the file, channel or field at fault and say what to do."""

from __future__ import annotations


class NeuroRVQError(Exception):
    """Base class of every error neurorvq raises on purpose."""


class ConfigError(NeuroRVQError, ValueError):
    """An inconsistent modality spec, model option or recipe field."""


class InputError(NeuroRVQError, ValueError):
    """A signal, channel list or token tensor that a model cannot take."""


class CheckpointError(NeuroRVQError, ValueError):
    """A state dict or pretrained folder that does not fit the model it is loaded into."""
