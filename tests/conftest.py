"""Shared test helpers. Tests that need ../shared (official fixtures, real recordings) skip where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

# imported before any test runs: Lightning's log handler keeps the stderr of the moment it is imported, and a test
# that captures output (capsys) closes its stream afterwards, so a later test's log line would hit a closed stream
import lightning.pytorch  # noqa: F401
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NEURORVQ_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "official"
DATA = SHARED / "data"

torch.set_num_threads(min(2, torch.get_num_threads()))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set NEURORVQ_SHARED to the folder holding fixtures/ and data/)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _require(FIXTURES, "official fixtures")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _require(DATA, "shared recordings")


@pytest.fixture
def cli_error(capsys: pytest.CaptureFixture):
    """``cli_error(args)``: run ``neurorvq ARGS`` as a user would; assert it exits with the user-error status and
    no traceback; return the one error message (stderr). (A fixture: test modules cannot import from conftest,
    another conftest.py of the suite may hold that module name.)"""
    from neurorvq.cli import main

    def run(args: list[str]) -> str:
        capsys.readouterr()
        status = main(args)
        err = capsys.readouterr().err
        assert status == 2, f"expected exit status 2, got {status}; stderr: {err}"
        assert "Traceback" not in err and "error: " in err
        return err

    return run


@pytest.fixture
def anonymised_edf():
    """``anonymised_edf(path, n_channels, seconds=8.0)``, see :func:`write_anonymised_edf`."""
    return write_anonymised_edf


def write_anonymised_edf(path: Path, n_channels: int, seconds: float = 8.0) -> Path:
    """An EDF whose channels are named ``EEG 000`` ... (an anonymised export): channel k is a 10 Hz sine of
    (k + 1) x 10 uV at 200 Hz, so the rows can be told apart after loading."""
    import mne
    import numpy as np

    pytest.importorskip("edfio", reason="mne.export.export_raw writes EDF with edfio")
    sfreq = 200.0
    t = np.arange(int(seconds * sfreq)) / sfreq
    data = np.stack([(k + 1) * 10e-6 * np.sin(2 * np.pi * 10 * t) for k in range(n_channels)])
    info = mne.create_info([f"EEG {k:03d}" for k in range(n_channels)], sfreq, "eeg")
    path.parent.mkdir(parents=True, exist_ok=True)
    mne.export.export_raw(path, mne.io.RawArray(data, info, verbose="error"), fmt="edf", overwrite=True,
                          verbose="error")
    return path
