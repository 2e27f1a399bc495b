"""Tokenizer families side by side (NeuroRVQ, LaBraM's VQ-NSP, BrainRVQ's DD-RVQ): a training step and encoding at
each family's default (official) size, on one workload, in one run (the timed steps alternate between the families, so a busy machine slows both alike).

Workload: B windows x 64 EEG channels (the EEGMMIDB montage: names every family's vocabulary holds) x A patches of
200 samples, µV. A training step is the family's training forward (its losses) + backward + AdamW; "encode" is
``tokenize`` (ids and side fields) without gradients. "patches/s" counts channel-patches (B x 64 x A per step).

    python benchmarks/family_speed.py --case train --batch 2
    python benchmarks/family_speed.py --case encode --batch 8
    python benchmarks/family_speed.py --case train --batch 64 --device cuda --precision bf16

Prints one JSON line per family with the median wall and process CPU time per step, patches/s, the ratio to the
first family, the trainable parameters and the peak memory (CUDA: ``max_memory_allocated``; CPU: the process's
peak resident set, shared by both families in one process).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from typing import Any, Callable, Mapping

import torch

from neurorvq import NeuroRVQTokenizer
from neurorvq.models.spectral_vq import BrainRVQTokenizer, LaBraMTokenizer

MONTAGE = ("fc5", "fc3", "fc1", "fcz", "fc2", "fc4", "fc6", "c5", "c3", "c1", "cz", "c2", "c4", "c6", "cp5", "cp3",
           "cp1", "cpz", "cp2", "cp4", "cp6", "fp1", "fpz", "fp2", "af7", "af3", "afz", "af4", "af8", "f7", "f5", "f3",
           "f1", "fz", "f2", "f4", "f6", "f8", "ft7", "ft8", "t7", "t8", "t9", "t10", "tp7", "tp8", "p7", "p5", "p3",
           "p1", "pz", "p2", "p4", "p6", "p8", "po7", "po3", "poz", "po4", "po8", "o1", "oz", "o2", "iz")
"""EEGMMIDB's 64 electrodes (lower case), in file order."""

FAMILIES = {"neurorvq": lambda: NeuroRVQTokenizer("eeg", check_inputs=False),
            "labram_vqnsp": lambda: LaBraMTokenizer("eeg", check_inputs=False),
            "brainrvq": lambda: BrainRVQTokenizer("eeg", check_inputs=False)}


DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""``--precision`` -> autocast dtype (None: plain fp32)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def family_parser(description: str, families: Mapping[str, Any], steps: int, warmup: int) -> argparse.ArgumentParser:
    """The options both family scripts take (``description``: the script's docstring): ``--families`` (of
    ``families``), ``--batch``, ``--patches``, ``--device``, ``--precision``, ``--steps``, ``--warmup`` (with these
    defaults)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(families), help=f"comma-separated, of {list(families)}")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--patches", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=list(DTYPES), default="fp32")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--warmup", type=int, default=warmup)
    return parser


def chosen_families(parser: argparse.ArgumentParser, args: argparse.Namespace, families: Mapping[str, Any]) -> list[str]:
    """The ``--families`` names, in the given order; an unknown one is a usage error."""
    names = args.families.split(",")
    unknown = [n for n in names if n not in families]
    if unknown:
        parser.error(f"unknown families {unknown}; choose among {list(families)}")
    return names


def time_interleaved(runs: Mapping[str, Callable[[], None]], steps: int, warmup: int, device: torch.device
                     ) -> tuple[dict[str, list[float]], dict[str, list[float]], float]:
    """``warmup`` untimed rounds, then ``steps`` rounds in which every run steps once in turn (interleaved: load
    changes hit every family alike). Returns ``(wall seconds, process CPU seconds)`` per step of every run and the
    peak memory in GiB (CUDA: ``max_memory_allocated`` after the warm-up; CPU: the process's peak resident set)."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(steps):
        for name, run in runs.items():
            start, cpu_start = time.perf_counter(), time.process_time()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - cpu_start)
    peak = (torch.cuda.max_memory_allocated() / 2 ** 30 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    return times, cpu, peak


def main() -> None:
    parser = family_parser(__doc__, FAMILIES, steps=5, warmup=2)
    parser.add_argument("--case", choices=["train", "encode"], default="train")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, len(MONTAGE), args.patches * 200, device=device) * 20
    dtype = DTYPES[args.precision]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    names = chosen_families(parser, args, FAMILIES)

    def make_step(model: torch.nn.Module):
        if args.case == "train":
            model.train()
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

            def step() -> None:
                torch.manual_seed(0)
                with autocast:
                    _, outputs = model(x, list(MONTAGE))
                outputs["loss"].backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            return step
        with torch.no_grad(), autocast:  # one training pass initialises the codebooks (k-means), as trained ones are
            model.train()(x, list(MONTAGE))
        model.eval()

        @torch.no_grad()
        def step() -> None:
            with autocast:
                model.tokenize(x, list(MONTAGE))
        return step

    models = {name: FAMILIES[name]().to(device) for name in names}
    runs = {name: make_step(model) for name, model in models.items()}
    times, cpu, peak = time_interleaved(runs, args.steps, args.warmup, device)
    patches = args.batch * len(MONTAGE) * args.patches
    reference = statistics.median(times[names[0]])
    for name in names:
        median = statistics.median(times[name])
        print(json.dumps({"case": args.case, "family": name, "device": str(device), "precision": args.precision,
                          "batch": args.batch, "channels": len(MONTAGE), "patches": args.patches,
                          "threads": torch.get_num_threads(),
                          "trainable_parameters": sum(p.numel() for p in models[name].parameters() if p.requires_grad),
                          "median_ms": round(median * 1e3, 1), "min_ms": round(min(times[name]) * 1e3, 1),
                          "median_cpu_ms": round(statistics.median(cpu[name]) * 1e3, 1),
                          "patches_per_s": round(patches / median, 1),
                          f"speed_vs_{names[0]}": round(reference / median, 3),
                          "peak_gib": round(peak, 2)}), flush=True)


if __name__ == "__main__":
    main()
