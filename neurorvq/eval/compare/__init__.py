"""Compare tokenizers of any family on the same held-out windows, in NeuroRVQ's Table 1 layout.

* :mod:`~neurorvq.eval.compare.run` — :func:`compare_tokenizers`: reconstruct, score (raw and per-band MSE in the
  ``patch`` and ``channel`` filtering modes, bits/s, codebook usage and perplexity per level);
* :mod:`~neurorvq.eval.compare.published` — the paper's Table 1 rows, labelled "published (paper, different data)";
* :mod:`~neurorvq.eval.compare.report` — Markdown, CSV and JSON; :mod:`~neurorvq.eval.compare.figure` — the figure;
* :mod:`~neurorvq.eval.compare.command` — ``neurorvq compare-tokenizers`` from checkpoints and a data file.
"""

from neurorvq.eval.compare.published import PUBLISHED_LABEL, TABLE_1, PublishedRow, published_rows
from neurorvq.eval.compare.run import (MODES, Comparison, ExampleWindow, TokenizerScores, bits_per_second,
                                       compare_tokenizers, mode_text, named_tokenizers)

__all__ = ["Comparison", "ExampleWindow", "MODES", "PUBLISHED_LABEL", "PublishedRow", "TABLE_1", "TokenizerScores",
           "bits_per_second", "compare_tokenizers", "mode_text", "named_tokenizers", "published_rows"]
