"""Peak memory (and time) of the nearest-code search over a large batch, with and without chunking.

Official size by default: 4 branches, K = 8192 codes of d = 128, 64 windows x 256 tokens = 16,384 rows per branch.
Cases: ``search`` (one level: :func:`~neurorvq.nn.code_search.nearest_codes` vs the dense reference
:func:`~neurorvq.nn.code_search.nearest_codes_dense`) and ``quantizer`` (the whole 8-level
:class:`~neurorvq.nn.rvq.ResidualVQ` forward in eval mode, chunked by default vs one dense block per level).
Every (case, mode) runs in its own subprocess, so each peak is clean:

    python benchmarks/quantizer_memory.py                       # both cases, both modes, ratios (3 timed calls)
    python benchmarks/quantizer_memory.py --case search --block-elements 4194304
    python benchmarks/quantizer_memory.py --device cuda

On CPU the peak is the rise of the process's peak resident set size (``ru_maxrss``) over its value just before the
call, and the largest single allocation an ATen op made (torch.profiler with ``profile_memory=True``, a second
call); on CUDA, ``torch.cuda.max_memory_allocated`` above the memory held before the call. Prints one JSON line
per run and a summary line with the dense/chunked ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes


def _largest_aten_allocation(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max((e.self_cpu_memory_usage for e in prof.events() if e.name.startswith("aten::")), default=0)


def run_one(args: argparse.Namespace) -> dict:
    from neurorvq.nn.code_search import DEFAULT_BLOCK_ELEMENTS, nearest_codes, nearest_codes_dense
    from neurorvq.nn.rvq import ResidualVQ

    device = torch.device(args.device)
    torch.manual_seed(0)
    rows = args.windows * args.tokens
    block = args.block_elements or DEFAULT_BLOCK_ELEMENTS
    if args.case == "search":
        z = F.normalize(torch.randn(args.branches, rows, args.dim, device=device), dim=-1)
        codebook = F.normalize(torch.randn(args.branches, args.codebook_size, args.dim, device=device), dim=-1)
        if args.mode == "dense":
            def call():
                return nearest_codes_dense(z, codebook).ids
        else:
            def call():
                return nearest_codes(z, codebook, block_elements=block).ids
    else:
        rvq = ResidualVQ(args.branches, args.levels, args.codebook_size, args.dim,
                         search_block_elements=block if args.mode == "chunked" else 2 ** 62).to(device).eval()
        rvq.mark_initialised()
        z = torch.randn(args.branches, rows, args.dim, device=device)

        @torch.no_grad()
        def call():
            return rvq(z).indices

    if device.type == "cuda":
        torch.cuda.synchronize()
        held = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    before = _peak_rss_bytes()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ids = call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    result = {"case": args.case, "mode": args.mode, "device": str(device), "branches": args.branches,
              "rows_per_branch": rows, "codebook_size": args.codebook_size, "dim": args.dim,
              "levels": args.levels if args.case == "quantizer" else 1,
              "block_elements": block if args.mode == "chunked" else None,
              "threads": torch.get_num_threads(), "median_seconds": round(seconds, 3),
              "min_seconds": round(min(times), 3)}
    if device.type == "cuda":
        result["peak_mib"] = round((torch.cuda.max_memory_allocated() - held) / 2 ** 20, 1)
    else:
        result["peak_rss_rise_mib"] = round((_peak_rss_bytes() - before) / 2 ** 20, 1)
        result["largest_aten_allocation_mib"] = round(_largest_aten_allocation(call) / 2 ** 20, 1)
    result["ids_checksum"] = int(ids.sum())  # the two modes must agree
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=["search", "quantizer", "both"], default="both")
    parser.add_argument("--mode", choices=["chunked", "dense", "both"], default="both")
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--levels", type=int, default=8)
    parser.add_argument("--codebook-size", type=int, default=8192)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per window (64 channels x 4 patches)")
    parser.add_argument("--block-elements", type=int, default=None, help="chunk bound (default: the library's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls (median); the peak covers them all")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # one run, in this process
    args = parser.parse_args()
    if args.single:
        print(json.dumps(run_one(args)), flush=True)
        return
    cases = ["search", "quantizer"] if args.case == "both" else [args.case]
    modes = ["dense", "chunked"] if args.mode == "both" else [args.mode]
    passthrough = [a for a in sys.argv[1:] if not a.startswith(("--case", "--mode")) and a not in cases + modes + ["both"]]
    results = {}
    for case in cases:
        for mode in modes:
            out = subprocess.run([sys.executable, __file__, "--single", "--case", case, "--mode", mode, *passthrough],
                                 capture_output=True, text=True, check=True)
            line = out.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            results[case, mode] = json.loads(line)
    for case in cases:
        if (case, "dense") in results and (case, "chunked") in results:
            dense, chunked = results[case, "dense"], results[case, "chunked"]
            key = "peak_mib" if "peak_mib" in dense else "peak_rss_rise_mib"
            print(json.dumps({"case": case, "summary": True, "ids_checksums_equal": dense["ids_checksum"] == chunked["ids_checksum"],
                              f"{key}_dense": dense[key], f"{key}_chunked": chunked[key],
                              "memory_ratio_dense_over_chunked": round(dense[key] / max(chunked[key], 1e-9), 2),
                              "time_ratio_dense_over_chunked": round(dense["median_seconds"] / chunked["median_seconds"], 2)}))


if __name__ == "__main__":
    main()
