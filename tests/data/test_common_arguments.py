"""Every DataModule takes the base's common arguments (issue 13): declared once in RecordingDataModule and
forwarded with ``**common``, resolved by jsonargparse for recipes (``--data.init_args.cache_dir=...``)."""

import importlib
import inspect
import pkgutil

import pytest
from jsonargparse import ArgumentParser

import neurorvq.datamodules as package
from neurorvq.data.datamodule import RecordingDataModule

FIXED = {  # common arguments a dataset sets itself (hidden from recipes, as before)
    "BCIIV2aDataModule": {"stride_seconds"},
    "SleepEDFDataModule": {"stride_seconds", "modality"},
    "MITBIHDataModule": {"stride_seconds", "modality"},
    "PTBXLDataModule": {"val_subjects", "test_subjects", "val_fraction", "test_fraction", "modality", "split"},
    "EEGMMIDBDataModule": {"modality"},
    "EEGFolderDataModule": {"modality"},
    "HighGammaDataModule": {"stride_seconds", "modality"},
    "Lee2019ERPDataModule": {"stride_seconds", "modality"},
    "Pavlov2022DataModule": {"stride_seconds", "modality"},
    "DiscreteGesturesDataModule": {"stride_seconds"},
    "BrainOmniSampleDataModule": {"modality"},
}


def _datamodules() -> list[type]:
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, RecordingDataModule) and cls.__module__ == module.__name__ and \
                    "find_recordings" in {n for c in cls.__mro__[:-1] if c is not RecordingDataModule
                                          for n in vars(c)}:
                found[cls.__name__] = cls
    return sorted(found.values(), key=lambda c: c.__name__)


def _fields(cls: type) -> set[str]:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "data")
    return set(vars(parser.get_defaults().data))


def test_every_recording_datamodule_is_found():
    names = {c.__name__ for c in _datamodules()}
    assert {"BCIIV2aDataModule", "NinaProDB5DataModule", "PTBXLDataModule", "MITBIHDataModule", "EEGMMIDBDataModule",
            "SleepEDFDataModule", "SEMGArmbandDataModule", "EEGFolderDataModule", "WFDBFolderDataModule"} <= names


@pytest.mark.parametrize("cls", _datamodules(), ids=lambda c: c.__name__)
def test_datamodules_take_every_common_argument_and_a_cache(cls):
    base = _fields(RecordingDataModule)
    fields = _fields(cls)
    missing = base - fields - FIXED.get(cls.__name__, set())
    assert not missing, f"{cls.__name__} lost common arguments {sorted(missing)}"
    assert "cache_dir" in fields and "root" in fields


def test_a_subclass_default_wins_and_reaches_the_base(tmp_path):
    from neurorvq.datamodules.ptbxl import PTBXLDataModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(PTBXLDataModule, "data")
    defaults = parser.get_defaults().data
    assert defaults.batch_size == 64 and defaults.window_seconds == 10.0 and defaults.cache_dir is None
    dm = PTBXLDataModule(str(tmp_path), cache_dir=str(tmp_path / "cache"), num_workers=0, verbose=False)
    assert dm.batch_size == 64 and dm.cache_dir == tmp_path / "cache"
    assert dm.hparams["cache_dir"] == str(tmp_path / "cache") and "common" not in dm.hparams
