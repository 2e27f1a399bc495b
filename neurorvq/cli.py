"""The ``neurorvq`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence


def _demo(args: argparse.Namespace) -> int:
    """Encode and reconstruct generated signals with a freshly initialised tokenizer."""
    import torch

    from neurorvq import NeuroRVQTokenizer, get_modality
    from neurorvq.nn.spectral import per_sample_standardize

    spec = get_modality(args.modality)
    torch.manual_seed(args.seed)
    model = NeuroRVQTokenizer(spec).eval()
    channels = list(spec.channels[: args.channels])
    n = int(args.seconds * spec.sampling_rate) // spec.patch_length * spec.patch_length
    t = torch.arange(n) / spec.sampling_rate
    rhythm = torch.sin(2 * torch.pi * 10.0 * t) * 20.0
    x = rhythm + 10.0 * torch.randn(args.batch, len(channels), n).cumsum(-1) / n ** 0.5
    print(f"modality {spec.name}: {len(channels)} channels x {n / spec.sampling_rate:g} s at "
          f"{spec.sampling_rate:g} Hz, batch {args.batch}; tokenizer with {model.num_parameters():,} trainable "
          f"parameters and {spec.num_branches} x {spec.n_quantizers} codebooks of {spec.codebook_size} x "
          f"{spec.code_dim}")
    start = time.perf_counter()
    tokens, stats = model.encode(x, channels, return_amplitude_stats=True)
    rec = model.decode(tokens, channels, stats)
    elapsed = time.perf_counter() - start
    mse = torch.mean((per_sample_standardize(rec)[0] - per_sample_standardize(x)[0]) ** 2).item()
    print(f"tokens {tuple(tokens.shape)} [batch, branch, depth, channel*patch]; reconstruction {tuple(rec.shape)}")
    print(f"encode + decode: {elapsed:.2f} s; MSE of standardised signals (untrained model): {mse:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurorvq", description="NeuroRVQ biosignal tokenizers")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="encode and reconstruct generated signals with a fresh tokenizer")
    demo.add_argument("--modality", default="eeg")
    demo.add_argument("--channels", type=int, default=16)
    demo.add_argument("--seconds", type=float, default=4.0)
    demo.add_argument("--batch", type=int, default=2)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
