"""Tokenizer speed and memory at the official EEG size, on the workload of the official figures
(../shared/docs/performance.md): B windows x 64 channels x 4 patches of 200 samples (256 tokens per window);
"patches/s" counts channel-patches (B x 256 per step). A training step is forward + the four losses +
backward + AdamW. Median of timed steps after warm-up (the first training step also runs the k-means init).

    python benchmarks/tokenizer_speed.py --case train --batch 2
    python benchmarks/tokenizer_speed.py --case encode --batch 2
    python benchmarks/tokenizer_speed.py --case train --batch 64 --device cuda --precision bf16 [--compile]

Prints one JSON line per run. On CPU, peak memory is the process's peak resident set size (run one case per
process for a clean figure); on CUDA, ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch

from neurorvq import NeuroRVQTokenizer
from neurorvq.modalities.eeg import EEG_CHANNELS_V1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=["train", "encode", "encode_decode"], default="train")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--patches", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 search must stay float32
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = NeuroRVQTokenizer("eeg", check_inputs=False).to(device)
    channels = torch.tensor([i for i in range(args.channels)], device=device)  # first 64 vocabulary names
    x = torch.randn(args.batch, args.channels, args.patches * 200, device=device) * 20
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    if args.case == "train":
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step() -> None:
            with autocast:
                _, figures = model(x, channels)
            figures["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    else:
        model.eval()
        model.quantizer.mark_initialised()

        @torch.no_grad()
        def step() -> None:
            with autocast:
                tokens, stats = model.encode(x, channels, return_amplitude_stats=True)
                if args.case == "encode_decode":
                    model.decode(tokens, channels, stats)

    run = torch.compile(step) if args.compile else step
    for _ in range(args.warmup):
        run()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    patches = args.batch * args.channels * args.patches
    if device.type == "cuda":
        peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30
    else:
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(json.dumps({"case": args.case, "device": str(device), "precision": args.precision, "compile": args.compile,
                      "batch": args.batch, "threads": torch.get_num_threads(), "median_ms": round(median * 1e3, 1),
                      "patches_per_s": round(patches / median, 1), "peak_gib": round(peak_gib, 2),
                      "vocabulary_channels": [EEG_CHANNELS_V1[i] for i in (0, args.channels - 1)]}))


if __name__ == "__main__":
    main()
