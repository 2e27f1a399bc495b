"""Tokenizer speed and memory at the official EEG size, on the workload of the official figures
(../shared/docs/performance.md): B windows x 64 channels x 4 patches of 200 samples (256 tokens per window);
"patches/s" counts channel-patches (B x 256 per step). A training step is forward + the four losses +
backward + AdamW. Median of timed steps after warm-up (the first training step also runs the k-means init).

    python benchmarks/tokenizer_speed.py --case train --batch 2
    python benchmarks/tokenizer_speed.py --case encode --batch 2
    python benchmarks/tokenizer_speed.py --case train --batch 64 --device cuda --precision bf16 [--compile]

Before/after in one run (``--variants``, comma-separated; the first is the reference of the ratios): each variant
is its own copy of the same model (same weights, same batch) and the timed steps alternate between them, so a busy
machine slows all of them alike:

    python benchmarks/tokenizer_speed.py --case train --batch 2 --variants rev:685304c,chunked,dense

- ``chunked``: the current quantizer, nearest-code search in bounded blocks (the default);
- ``dense``: the current quantizer with one unbounded search block per level (the original search's arithmetic);
- ``rev:REV``: the quantizer (``neurorvq/nn/rvq.py``) as it was at git revision ``REV`` (needs a git checkout),
  e.g. ``rev:685304c``, the last revision before the once-per-step statistics and the chunked search.
A ``+compile`` suffix (``chunked+compile``) runs that variant under ``torch.compile``; ``--compile`` compiles
every variant.

Prints one JSON line per run (per variant), with the median wall and process CPU time per step (the CPU time is
less sensitive to other jobs on a busy machine). On CPU, peak memory is the process's peak resident set size (run one
case and one variant per process for a clean figure); on CUDA, ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from neurorvq import NeuroRVQTokenizer
from neurorvq.modalities.eeg import EEG_CHANNELS_V1

REPO = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def quantizer_at_revision(rev: str) -> type:
    """``ResidualVQ`` of ``neurorvq/nn/rvq.py`` at git revision ``rev`` (loaded as a stand-alone module)."""
    source = subprocess.run(["git", "show", f"{rev}:neurorvq/nn/rvq.py"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout
    module = types.ModuleType("rvq_at_" + re.sub(r"\W", "_", rev))
    sys.modules[module.__name__] = module  # torch.compile looks functions' globals up by module name
    exec(compile(source, f"{rev}:neurorvq/nn/rvq.py", "exec"), module.__dict__)
    return module.ResidualVQ


def make_variant(base: NeuroRVQTokenizer, name: str) -> NeuroRVQTokenizer:
    """A copy of ``base`` whose quantizer is the variant ``name`` (same weights and codebooks)."""
    model = copy.deepcopy(base)
    q = model.quantizer
    name = name.removesuffix("+compile")
    if name == "chunked":
        pass
    elif name == "dense":
        q.search_block_elements = 2 ** 62
    elif name.startswith("rev:"):
        old = quantizer_at_revision(name[4:])(q.num_branches, q.depth, q.codebook_size, q.dim, decay=q.decay,
                                              beta=q.beta, aux_weight=q.aux_weight, kmeans_iters=q.kmeans_iters,
                                              official_eval_updates=q.official_eval_updates,
                                              dead_code_after=q.dead_code_after)
        old.load_state_dict(q.state_dict())
        model.quantizer = old.to(q.codebooks.device)
    else:
        raise SystemExit(f"unknown variant {name!r}: chunked, dense or rev:REV")
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=["train", "encode", "encode_decode"], default="train")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--patches", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--variants", default="chunked",
                        help="comma-separated: chunked, dense, rev:REV, each optionally with +compile")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 search must stay float32
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    base = NeuroRVQTokenizer("eeg", check_inputs=False).to(device)
    channels = torch.tensor([i for i in range(args.channels)], device=device)  # first 64 vocabulary names
    x = torch.randn(args.batch, args.channels, args.patches * 200, device=device) * 20
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def make_step(model: NeuroRVQTokenizer, compiled: bool):
        if args.case == "train":
            model.train()
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            forward = torch.compile(model) if compiled else model

            def step() -> torch.Tensor:
                torch.manual_seed(0)  # the same draws (k-means) in every variant
                with autocast:
                    _, figures = forward(x, channels)
                figures["loss"].backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                return figures["tokens"]
            return step
        model.eval()
        model.quantizer.mark_initialised()

        @torch.no_grad()
        def step() -> torch.Tensor:
            with autocast:
                tokens, stats = model.encode(x, channels, return_amplitude_stats=True)
                if args.case == "encode_decode":
                    model.decode(tokens, channels, stats)
            return tokens
        return torch.compile(step) if compiled else step

    names = args.variants.split(",")
    runs = {name: make_step(make_variant(base, name), args.compile or name.endswith("+compile")) for name in names}
    first_tokens = {}
    for i in range(args.warmup):
        for name, run in runs.items():
            tokens = run()
            if i == 0:
                first_tokens[name] = tokens
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu_times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.steps):
        for name, run in runs.items():  # interleaved: load changes hit every variant alike
            start, cpu_start = time.perf_counter(), time.process_time()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - cpu_start)
    patches = args.batch * args.channels * args.patches
    if device.type == "cuda":
        peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30
    else:
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    reference = statistics.median(times[names[0]])
    cpu_reference = statistics.median(cpu_times[names[0]])
    for name in names:
        median = statistics.median(times[name])
        same = bool(torch.equal(first_tokens[name], first_tokens[names[0]])) if first_tokens else None
        print(json.dumps({"case": args.case, "variant": name, "device": str(device), "precision": args.precision,
                          "compile": args.compile or name.endswith("+compile"), "batch": args.batch, "threads": torch.get_num_threads(),
                          "median_ms": round(median * 1e3, 1), "min_ms": round(min(times[name]) * 1e3, 1),
                          "patches_per_s": round(patches / median, 1),
                          "median_cpu_ms": round(statistics.median(cpu_times[name]) * 1e3, 1),
                          f"speedup_vs_{names[0]}": round(reference / median, 3),
                          f"cpu_time_ratio_{names[0]}_over_this": round(cpu_reference / statistics.median(cpu_times[name]), 3),
                          f"first_step_ids_equal_{names[0]}": same,
                          "peak_gib_process": round(peak_gib, 2),
                          "vocabulary_channels": [EEG_CHANNELS_V1[i] for i in (0, args.channels - 1)]}))


if __name__ == "__main__":
    main()
