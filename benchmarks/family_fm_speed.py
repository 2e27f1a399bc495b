"""Foundation-model pretraining steps of the families side by side (NeuroRVQ's FM, LaBraM's masked-code student,
BrainRVQ's hierarchical autoregressive student), each at its official size with its own frozen tokenizer at official
size (random weights), on one workload, the timed steps alternating between the families in one process.

One step is what ``PretrainTask`` does: the frozen tokenizer's ids of the batch (no grad), the family's mask
(NeuroRVQ: random 0.5; LaBraM: L - floor(0.5 L) by argsort; BrainRVQ: the importance-guided curriculum mask, at epoch
0 of 50), the masked and complement views, the family's loss (32 heads; 1 head; 6 level-conditioned heads with
teacher forcing), backward, AdamW. Workload: B windows x the 64 EEGMMIDB channels x A one-second patches, µV.

    python benchmarks/family_fm_speed.py --batch 2 --steps 3 --warmup 1
    python benchmarks/family_fm_speed.py --batch 32 --device cuda --precision bf16

Prints one JSON line per family: median wall and CPU time per step, the split into targets (tokenizer) and the FM's
own forward + backward + optimiser, patches/s, the ratio to the first family, trainable FM parameters, peak memory.
"""

from __future__ import annotations

import json
import statistics
import time

import torch

from neurorvq import NeuroRVQTokenizer
from neurorvq.models.brainrvq_fm import BrainRVQFoundationModel
from neurorvq.models.fm import NeuroRVQFoundationModel
from neurorvq.models.labram_fm import LaBraMFoundationModel
from neurorvq.models.spectral_vq import BrainRVQTokenizer, LaBraMTokenizer
from neurorvq.tasks.masking import token_mask
from neurorvq.tasks.pretrain import masked_token_loss

from family_speed import (DTYPES, MONTAGE, _sync, chosen_families, family_parser,  # a sibling script: the same
                          time_interleaved)  # 64 EEGMMIDB electrodes, options, device sync and interleaved timing

FAMILIES = {
    "neurorvq": (lambda: NeuroRVQTokenizer("eeg", check_inputs=False),
                 lambda: NeuroRVQFoundationModel("eeg", pretraining=True)),
    "labram_vqnsp": (lambda: LaBraMTokenizer("eeg", check_inputs=False),
                     lambda: LaBraMFoundationModel("eeg", pretraining=True)),
    "brainrvq": (lambda: BrainRVQTokenizer("eeg", check_inputs=False),
                 lambda: BrainRVQFoundationModel("eeg", pretraining=True)),
}


def main() -> None:
    parser = family_parser(__doc__, FAMILIES, steps=3, warmup=1)
    args = parser.parse_args()
    names = chosen_families(parser, args, FAMILIES)

    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, len(MONTAGE), args.patches * 200, device=device) * 20
    channels = list(MONTAGE)
    dtype = DTYPES[args.precision]

    def make_step(name: str):
        tokenizer, fm = (build().to(device) for build in FAMILIES[name])
        with torch.no_grad():  # one training pass initialises the codebooks (k-means), as a trained tokenizer's are
            tokenizer.train()(x, channels)
        tokenizer.eval()
        optimizer = torch.optim.AdamW([p for p in fm.parameters() if p.requires_grad], lr=5e-4)
        fm.train()
        split: dict[str, list[float]] = {"targets": [], "fm": []}

        def step() -> None:
            start = time.perf_counter()
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                targets = tokenizer.tokenize(x, channels).ids
            _sync(device)
            middle = time.perf_counter()
            b, _, length = targets.shape
            generator = torch.Generator().manual_seed(0)
            if hasattr(fm, "pretrain_mask"):
                mask = fm.pretrain_mask(x, channels, ratio=0.5, generator=generator, epoch=0, epochs=50)
            else:
                mask = token_mask(b, length, 0.5, getattr(fm, "mask_rule", "round"), generator, device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                if getattr(fm, "conditions_on_targets", False):
                    out = fm.forward_pretrain(x, channels, mask, targets=targets)
                else:
                    out = fm.forward_pretrain(x, channels, mask)
                own = getattr(fm, "pretrain_loss", None)
                loss = own(out, targets, mask) if own is not None else masked_token_loss(out, targets, mask)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(device)
            split["targets"].append(middle - start)
            split["fm"].append(time.perf_counter() - middle)

        return step, split, sum(p.numel() for p in fm.parameters() if p.requires_grad)

    runs = {name: make_step(name) for name in names}
    for _ in range(args.warmup):  # untimed: their targets/FM split is not kept
        for step, split, _ in runs.values():
            step()
            split["targets"].clear()
            split["fm"].clear()
    times, cpu, peak = time_interleaved({name: step for name, (step, _, _) in runs.items()}, args.steps, 0, device)
    patches = args.batch * len(MONTAGE) * args.patches
    reference = statistics.median(times[names[0]])
    for name in names:
        median = statistics.median(times[name])
        _, split, parameters = runs[name]
        print(json.dumps({"case": "pretrain_step_with_targets", "family": name, "device": str(device),
                          "precision": args.precision, "batch": args.batch, "channels": len(MONTAGE),
                          "patches": args.patches, "threads": torch.get_num_threads(),
                          "fm_trainable_parameters": parameters,
                          "median_ms": round(median * 1e3, 1),
                          "median_cpu_ms": round(statistics.median(cpu[name]) * 1e3, 1),
                          "median_targets_ms": round(statistics.median(split["targets"]) * 1e3, 1),
                          "median_fm_ms": round(statistics.median(split["fm"]) * 1e3, 1),
                          "patches_per_s": round(patches / median, 1),
                          f"speed_vs_{names[0]}": round(reference / median, 3), "peak_gib": round(peak, 2)}),
              flush=True)


if __name__ == "__main__":
    main()
