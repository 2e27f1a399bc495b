"""Foundation-model (FM) speed and memory at the official EEG size (``NeuroRVQFoundationModel("eeg")``, 12 blocks,
4 branches, 32 token heads of 8192 classes: 58.6 M parameters with the pretraining heads), random weights.

Cases (``--case``):

- ``pretrain_step``: one masked-token pretraining step as ``PretrainTask`` runs it: a fresh 0.5 token mask,
  ``forward_pretrain`` (masked view + symmetric view: 4 branches x 2 views = 8 transformer passes),
  ``masked_token_loss``, backward, AdamW (task defaults: lr 5e-4, betas (0.9, 0.98), weight decay 0.05 on matrices).
  The targets are given (random token ids), so this is the FM's own cost.
- ``targets``: the frozen tokenizer (``NeuroRVQTokenizer("eeg")``, eval, no grad) computing the targets
  ``[B, 4, 8, L]`` of the same batch with ``encode``; reported on its own.
- ``pretrain_step_with_targets``: both in one step, as ``PretrainTask._step`` does.
- ``features``: ``embed`` (fine-tuning features, no pretraining heads used) under ``torch.no_grad``.
- ``all``: every case above, each in its own process (so each peak-RSS figure is that case's own).

Workload: B windows x C channels x A patches of 200 samples, L = C x A tokens per window; "patches/s" counts
channel-patches (B x C x A per step). Defaults follow the official figures being compared with: on CPU the
official FM timing of method.md §6 (C=32, A=8, L=256); on CUDA the GPU table of performance.md (C=64, A=4, L=256;
B=32 for the pretraining cases, 64 for ``features``). Median of the timed steps after warm-up.

    python benchmarks/fm_speed.py --case pretrain_step --batch 2
    python benchmarks/fm_speed.py --case all --batch 2 --steps 3 --warmup 1
    python benchmarks/fm_speed.py --case pretrain_step_with_targets --device cuda --precision bf16 [--compile]
    python benchmarks/fm_speed.py --case features --device cuda --precision bf16

Prints one JSON line per case. Peak memory: on CPU the process's peak resident set size (``ru_maxrss``; it
includes building the models, so run one case per process -- ``--case all`` does); on CUDA
``torch.cuda.max_memory_allocated`` over the timed steps. For the pretraining step the JSON also gives median
forward (incl. loss; the mask is drawn before it), backward and optimiser times (not available under ``--compile``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

CASES = ("pretrain_step", "targets", "pretrain_step_with_targets", "features")
PATCH = 200

# Official figures (../shared/docs/performance.md, GPU: H100 80GB, bf16 autocast, C=64, A=4; CPU: method.md §6,
# B=8, C=32, A=8, 2 vCPUs shared with another process, fp32, forward and backward only, no optimiser step; the
# CPU encode figure of performance.md for ``targets``).
OFFICIAL_GPU = {  # case: (batch, ms/step, patches/s, peak GiB)
    "pretrain_step": (32, 380.0, 21540.0, 36.9),
    "pretrain_step_with_targets": (32, 516.0, 15865.0, 36.9),
    "targets": (32, 516.0 - 380.0, 32 * 256 / 0.136, None),  # derived: the difference of the two rows above
    "features": (64, 71.0, 230525.0, 1.4),
}
OFFICIAL_CPU_FM = {"batch": 8, "channels": 32, "patches": 8, "forward_s": 46.0, "backward_s": 187.0,
                   "tokenizer_eval_forward_s": 48.0}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rss_now_gib() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (OSError, ValueError):
        return None


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def _official(case: str, args, device: torch.device, median_s: float, patches_per_s: float,
              breakdown: dict[str, float]) -> dict:
    """The official figure for this case and our speed-up over it (same workload; CPU: per-sample throughput,
    because the official CPU run used B=8)."""
    if device.type == "cuda":
        if case not in OFFICIAL_GPU:
            return {}
        batch, ms, pps, peak = OFFICIAL_GPU[case]
        same = (args.batch, args.channels, args.patches) == (batch, 64, 4) and args.precision == "bf16"
        out = {"official_batch": batch, "official_ms": round(ms, 1), "official_patches_per_s": round(pps, 1),
               "official_peak_gib": peak, "speedup_throughput": round(patches_per_s / pps, 2),
               "same_workload": same}
        if case == "targets":
            out["official_note"] = "derived: official step with targets minus step without (516 - 380 ms)"
        return out
    o = OFFICIAL_CPU_FM
    same = (args.batch, args.channels, args.patches) == (o["batch"], o["channels"], o["patches"]) \
        and args.precision == "fp32"
    if case == "targets":  # performance.md CPU table: encode to tokens, B=2 x 64 ch x 4 patches (256 patches/window)
        return {"official_batch": 2, "official_ms": 3492.0, "official_patches_per_s": 146.6,
                "speedup_throughput": round(patches_per_s / 146.6, 2),
                "same_workload": (args.batch, args.channels * args.patches) == (2, 256) and args.precision == "fp32",
                "official_note": "performance.md CPU: encode to tokens, B=2 x 64 ch x 4 patches (same 256 "
                                 "patches per window, laid out 64 x 4 instead of 32 x 8)"}
    if case not in ("pretrain_step", "pretrain_step_with_targets"):
        return {}
    official_s = o["forward_s"] + o["backward_s"]
    note = ("method.md §6: B=8, C=32, A=8, fp32, 2 vCPUs shared with another process; FM forward 46 s + backward "
            "187 s, no optimiser step (ours includes AdamW)")
    if case == "pretrain_step_with_targets":
        official_s += o["tokenizer_eval_forward_s"]
        note += "; + the official tokenizer's eval forward 48 s for the targets (a full tokenizer forward, not only encode: generous to us)"
    official_pps = o["batch"] * o["channels"] * o["patches"] / official_s
    out = {"official_batch": o["batch"], "official_s": official_s,
           "official_patches_per_s": round(official_pps, 2),
           "speedup_throughput": round(patches_per_s / official_pps, 2), "same_workload": same,
           "official_note": note}
    if breakdown and case == "pretrain_step":
        per_sample = o["channels"] * o["patches"]
        scale = args.batch * args.channels * args.patches / (o["batch"] * per_sample)  # our share of their work
        out["speedup_forward"] = round(o["forward_s"] * scale / (breakdown["forward_ms"] / 1e3), 2)
        out["speedup_backward"] = round(o["backward_s"] * scale / (breakdown["backward_ms"] / 1e3), 2)
        out["speedup_fwd_bwd"] = round(official_s * scale
                                       / ((breakdown["forward_ms"] + breakdown["backward_ms"]) / 1e3), 2)
    return out


def run_case(args) -> dict:
    from neurorvq import NeuroRVQFoundationModel, NeuroRVQTokenizer, get_modality
    from neurorvq.models.fm import masked_token_loss
    from neurorvq.tasks.masking import random_token_mask
    from neurorvq.tasks.optim import weight_decay_groups

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the tokenizer's float32 search must stay float32
        torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    case = args.case
    b, c, a = args.batch, args.channels, args.patches
    length = c * a
    spec = get_modality("eeg")
    if c > spec.spatial_rows or a > spec.max_patches:
        raise SystemExit(f"at most {spec.spatial_rows} channels and {spec.max_patches} patches")
    channels = torch.arange(c, device=device)  # the first C names of the EEG vocabulary
    x = torch.randn(b, c, a * PATCH, device=device) * 20
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    tokenizer = fm = optimizer = None
    if case in ("targets", "pretrain_step_with_targets"):
        tokenizer = NeuroRVQTokenizer("eeg", check_inputs=False).to(device).eval()
        tokenizer.quantizer.mark_initialised()
        for p in tokenizer.parameters():
            p.requires_grad_(False)
    if case in ("pretrain_step", "pretrain_step_with_targets", "features"):
        fm = NeuroRVQFoundationModel("eeg", pretraining=case != "features", check_inputs=False).to(device)
    if case in ("pretrain_step", "pretrain_step_with_targets"):
        fm.train()
        optimizer = torch.optim.AdamW(weight_decay_groups(fm, 0.05), lr=5e-4, betas=(0.9, 0.98))
    elif fm is not None:
        fm.eval()

    generator = torch.Generator().manual_seed(0)
    random_targets = torch.randint(0, spec.codebook_size, (b, spec.num_branches, spec.n_quantizers, length),
                                   device=device)
    phases: dict[str, list[float]] = {"forward_ms": [], "backward_ms": [], "optimizer_ms": [], "targets_ms": []}
    timing = {"on": False}
    profile = not args.compile  # per-phase times need host syncs and clocks: not inside a compiled step

    def mark(name: str, start: float) -> float:
        if timing["on"]:
            _sync(device)
            now = time.perf_counter()
            phases[name].append((now - start) * 1e3)
            return now
        return start

    if case == "targets":
        @torch.no_grad()
        def step(mask=None) -> None:
            with autocast():
                tokenizer.encode(x, channels)
    elif case == "features":
        @torch.no_grad()
        def step(mask=None) -> None:
            with autocast():
                fm.embed(x, channels)
    else:
        def step(mask=None) -> None:
            t = time.perf_counter() if profile else 0.0
            if tokenizer is not None:
                with torch.no_grad(), autocast():
                    targets = tokenizer.encode(x, channels)
                if profile:
                    t = mark("targets_ms", t)
            else:
                targets = random_targets
            with autocast():
                out = fm.forward_pretrain(x, channels, mask)
                loss = masked_token_loss(out, targets, mask)
            if profile:
                t = mark("forward_ms", t)
            loss.backward()
            if profile:
                t = mark("backward_ms", t)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if profile:
                mark("optimizer_ms", t)

    def new_mask():  # a fresh 0.5 mask per step, drawn on the host as PretrainTask does (outside any compiled graph)
        if optimizer is None:
            return None
        return random_token_mask(b, length, 0.5, generator, device)

    run = torch.compile(step) if args.compile else step
    for _ in range(args.warmup):
        run(new_mask())
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_now_gib() if device.type == "cpu" else None
    times = []
    timing["on"] = True
    for _ in range(args.steps):
        start = time.perf_counter()
        run(new_mask())
        _sync(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    patches = b * c * a
    if device.type == "cuda":
        peak_gib = torch.cuda.max_memory_allocated() / 2 ** 30
    else:
        peak_gib = _peak_rss_gib()
    breakdown = {k: round(statistics.median(v), 1) for k, v in phases.items() if v}
    result = {"case": case, "device": str(device), "precision": args.precision, "compile": args.compile,
              "batch": b, "channels": c, "patches": a, "tokens": length, "threads": torch.get_num_threads(),
              "steps": args.steps, "warmup": args.warmup, "median_ms": round(median * 1e3, 1),
              "min_ms": round(min(times) * 1e3, 1), "max_ms": round(max(times) * 1e3, 1),
              "patches_per_s": round(patches / median, 1), "samples_per_s": round(b / median, 3),
              "peak_gib": round(peak_gib, 2), "peak_kind": "cuda_max_allocated" if device.type == "cuda" else "rss",
              **({"rss_at_timing_start_gib": round(rss_before, 2)} if rss_before is not None else {}),
              **breakdown,
              "parameters_m": round(sum(p.numel() for p in (fm or tokenizer).parameters()) / 1e6, 2),
              "loadavg_1min": round(os.getloadavg()[0], 2)}
    result.update(_official(case, args, device, median, patches / median, breakdown))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=CASES + ("all",), default="pretrain_step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--batch", type=int, default=None,
                        help="default: 2 on CPU; on CUDA 32 (pretraining cases) or 64 (features)")
    parser.add_argument("--channels", type=int, default=None, help="default: 32 on CPU, 64 on CUDA")
    parser.add_argument("--patches", type=int, default=None, help="default: 8 on CPU, 4 on CUDA")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 3 on CPU, 10 on CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 1 on CPU, 3 on CUDA)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    args = parser.parse_args()
    if args.precision == "32":
        args.precision = "fp32"
    cuda = torch.device(args.device).type == "cuda"
    if args.case == "all":  # one process per case: each peak RSS is its own
        for case in CASES:
            argv = [sys.executable, __file__, "--case", case] + [
                item for key in ("device", "precision", "batch", "channels", "patches", "steps", "warmup", "threads")
                if getattr(args, key) not in (None, 0)
                for item in (f"--{key}", str(getattr(args, key)))] + (["--compile"] if args.compile else [])
            subprocess.run(argv, check=True)
        return
    if args.batch is None:
        args.batch = (64 if args.case == "features" else 32) if cuda else 2
    if args.channels is None:
        args.channels = 64 if cuda else 32
    if args.patches is None:
        args.patches = 4 if cuda else 8
    if args.steps is None:
        args.steps = 10 if cuda else 3
    if args.warmup is None:
        args.warmup = 3 if cuda else 1
    print(json.dumps(run_case(args)), flush=True)


if __name__ == "__main__":
    main()
