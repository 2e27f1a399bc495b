"""The two channel_map forms of docs/datasets.md ("Your own channel names") parse as written."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from neurorvq import get_modality
from neurorvq.data.channel_map import load_channel_map

DOC = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Your own channel names")
    return text[start:text.index("\n## ", start + 1)]


def test_documented_forms_parse(tmp_path) -> None:
    blocks = dict(re.findall(r"^```(yaml|text)[ \t]*\n(.*?)^```", _section(), re.DOTALL | re.MULTILINE))
    recipe = yaml.safe_load(blocks["yaml"])["data"]["init_args"]
    eeg = get_modality("eeg")
    assert load_channel_map(recipe["channel_map"], eeg) == {"EEG 000": "fp1", "EEG 001": "fp2", "EEG 002": "cz"}
    path = tmp_path / "my_channels.csv"
    path.write_text(blocks["text"])
    assert load_channel_map(path, eeg) == {"EEG 000": "fp1", "EEG 001": "fp2"}
