"""Published reconstruction errors printed beside ours: NeuroRVQ's Table 1 (method.md §7.1, families.md §B.6).

In-distribution MSE of standardised EEG, raw and per band (delta 0.5-4, theta 4-8, alpha 8-13, beta 13-30, gamma
30-45 Hz). The paper's data, its LaBraM checkpoint and its filtering mode (per patch or per channel) are not
stated, so these rows are context, never a check of our numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

PUBLISHED_LABEL = "published (paper, different data)"
"""How published rows are labelled in every table."""
SOURCE = "NeuroRVQ paper, Table 1 (in-distribution EEG; method.md §7.1); filtering mode not stated"


@dataclass(frozen=True)
class PublishedRow:
    """A published model's MSE per column (``"raw"`` and band names) and where it comes from."""

    model: str
    mse: dict[str, float]
    source: str = SOURCE

    @property
    def label(self) -> str:
        """``"<model> — published (paper, different data)"``."""
        return f"{self.model} — {PUBLISHED_LABEL}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "label": self.label, "mse": dict(self.mse), "source": self.source}


TABLE_1: tuple[PublishedRow, ...] = (
    PublishedRow("LaBraM", {"raw": 1.071, "delta": 1.561, "theta": 0.184, "alpha": 0.099, "beta": 0.122,
                            "gamma": 0.020}),
    PublishedRow("NeuroRVQ", {"raw": 0.016, "delta": 0.006, "theta": 0.002, "alpha": 0.002, "beta": 0.005,
                              "gamma": 0.002}),
)


def published_rows(columns: Sequence[str]) -> list[PublishedRow]:
    """The rows of :data:`TABLE_1` when ``columns`` (``["raw", band names...]``) are Table 1's (EEG's bands);
    none for other modalities, whose bands the paper does not report."""
    return [row for row in TABLE_1 if list(row.mse) == list(columns)]


__all__ = ["PUBLISHED_LABEL", "PublishedRow", "SOURCE", "TABLE_1", "published_rows"]
