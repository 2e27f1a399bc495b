"""The quantizer and the tokenizer's training forward under ``torch.compile`` (CPU): no graph breaks once the
codebooks are initialised (the first-batch k-means is the one eager hook), and the compiled step's ids equal
eager's. The whole tokenizer is compiled with the ``aot_eager`` backend (the graph Dynamo and AOTAutograd capture,
without code generation: seconds on 2 cores); Inductor's generated code is checked on the quantizer and, through
TokenizerTask's ``compile`` option, on the toy family (small graphs: an Inductor build of the whole NeuroRVQ
training step takes minutes on 2 cores; benchmarks/tokenizer_speed.py --compile measures it)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from neurorvq import NeuroRVQTokenizer
from neurorvq.nn.rvq import ResidualVQ

TINY = {"encoder_depth": 1, "decoder_depth": 1, "n_quantizers": 2, "codebook_size": 32, "code_dim": 8}


def _dynamo_unavailable() -> str | None:
    try:
        import torch._dynamo as dynamo
    except Exception as error:  # pragma: no cover - depends on the installed torch
        return f"torch._dynamo cannot be imported: {error}"
    if not dynamo.is_dynamo_supported():  # pragma: no cover
        return "torch.compile is not supported on this Python/platform"
    return None


def _inductor_unavailable() -> str | None:
    reason = _dynamo_unavailable()
    if reason:
        return reason
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as error:  # pragma: no cover - a machine without a C++ compiler
        return f"Inductor has no C++ compiler here: {error}"
    return None


needs_dynamo = pytest.mark.skipif(_dynamo_unavailable() is not None, reason=str(_dynamo_unavailable()))
needs_inductor = pytest.mark.skipif(_inductor_unavailable() is not None, reason=str(_inductor_unavailable()))


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 3, 400, generator=torch.Generator().manual_seed(0)) * 20, torch.tensor([0, 1, 2])


@needs_dynamo
def test_training_forward_has_no_graph_breaks():
    torch.manual_seed(0)
    model = NeuroRVQTokenizer("eeg", **TINY).train()
    x, channels = tiny_batch()
    fresh = torch._dynamo.explain(copy.deepcopy(model))(x, channels, check_inputs=False)
    # before initialisation the only breaks are at the eager k-means hook (torch.compiler.disable)
    assert fresh.graph_break_count >= 1
    assert all("initialise" in str(b.reason) for b in fresh.break_reasons), [b.reason for b in fresh.break_reasons]
    model(x, channels, check_inputs=False)  # the first (eager) step initialises the codebooks
    explained = torch._dynamo.explain(model)(x, channels, check_inputs=False)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    assert explained.graph_count == 1
    # the input checks (the model's option, on by default) read values back to the host: the tasks pass
    # check_inputs=False as an argument instead of flipping the option
    checked = torch._dynamo.explain(model)(x, channels)
    assert checked.graph_break_count > 0


@needs_dynamo
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_quantizer_alone_has_no_graph_breaks(mode):
    torch.manual_seed(0)
    rvq = ResidualVQ(4, 3, 64, 8, dead_code_after=2, search_block_elements=4 * 64 * 10)  # several search blocks
    rvq.mark_initialised()
    rvq.train(mode == "train")
    explained = torch._dynamo.explain(rvq)(torch.randn(4, 45, 8))
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]


@needs_dynamo
def test_compiled_training_step_matches_eager_on_the_official_fixture(fixtures_dir):
    """A training step (forward, losses, backward, codebook EMA) of the official fixture tokenizer, compiled and
    eager: the same ids (the official ones), losses, gradients and codebooks."""
    inputs = load_file(str(fixtures_dir / "inputs.safetensors"))
    expected = load_file(str(fixtures_dir / "tokenizer_expected.safetensors"))["tokens"]
    meta = json.loads((fixtures_dir / "inputs.json").read_text())
    model = NeuroRVQTokenizer.from_official(fixtures_dir / "tokenizer_model.safetensors").train()
    channels = torch.tensor([model.spec.channel_index(c) for c in meta["channel_names"]])
    eager, compiled = copy.deepcopy(model), copy.deepcopy(model)
    step = torch.compile(compiled, backend="aot_eager", fullgraph=True)  # fullgraph: a break would raise
    _, out_eager = eager(inputs["x"], channels, check_inputs=False)
    _, out_compiled = step(inputs["x"], channels, check_inputs=False)
    out_eager["loss"].backward()
    out_compiled["loss"].backward()
    assert torch.equal(out_compiled["tokens"], out_eager["tokens"])
    assert torch.equal(out_compiled["tokens"].permute(1, 2, 0, 3), expected)
    torch.testing.assert_close(out_compiled["loss"], out_eager["loss"], rtol=1e-6, atol=0)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)
    assert torch.equal(compiled.quantizer.codebooks, eager.quantizer.codebooks)
    assert torch.equal(compiled.quantizer.usage, eager.quantizer.usage)


@needs_inductor
def test_inductor_compiled_quantizer_matches_eager():
    """Inductor's generated code for the quantizer's training forward (search in blocks, statistics, EMA): the
    same ids and counts as eager over three steps, codebooks within float32 rounding."""
    torch.manual_seed(0)
    rvq = ResidualVQ(4, 3, 64, 16, search_block_elements=4 * 64 * 50).train()
    data = torch.Generator().manual_seed(1)
    first = torch.randn(4, 120, 16, generator=data)
    rvq.initialise(first)
    eager, compiled = rvq, copy.deepcopy(rvq)
    step = torch.compile(compiled, fullgraph=True)
    for i in range(3):
        z = first if i == 0 else torch.randn(4, 120, 16, generator=data)
        out_eager, out_compiled = eager(z), step(z)
        assert torch.equal(out_compiled.indices, out_eager.indices), i
        assert torch.equal(out_compiled.counts, out_eager.counts), i
        torch.testing.assert_close(out_compiled.quantized, out_eager.quantized, rtol=0, atol=1e-6)
        torch.testing.assert_close(compiled.codebooks, eager.codebooks, rtol=0, atol=1e-6)


@needs_inductor
def test_tokenizer_task_compile_option(tmp_path):
    """``TokenizerTask(compile=True)`` trains through the compiled forward (toy family: a small graph) with the
    losses of the eager task."""
    import lightning as L

    from neurorvq.datamodules.synthetic import SyntheticDataModule
    from neurorvq.families.toy import ToyVQOptions
    from neurorvq.tasks.tokenizer import TokenizerTask

    class Losses(L.Callback):
        def __init__(self) -> None:
            self.values: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.values.append(float(outputs["loss"]))

    runs = {}
    for compile_ in (False, True):
        L.seed_everything(0)
        losses = Losses()
        task = TokenizerTask(tokenizer=ToyVQOptions(codebook_size=16, check_inputs=False), lr=1e-3,
                             compile=compile_)
        data = SyntheticDataModule(modality="eeg", channels=["c3", "cz", "c4"], window_seconds=2.0,
                                   train_windows=12, batch_size=4, seed=3)
        L.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                  num_sanity_val_steps=0, default_root_dir=tmp_path / str(compile_), callbacks=[losses]).fit(task, data)
        assert (task._compiled_forward is not None) is compile_
        runs[compile_] = (losses.values, task.tokenizer.quantizer.codebooks.clone())
    (eager_losses, eager_books), (compiled_losses, compiled_books) = runs[False], runs[True]
    assert len(compiled_losses) == 3
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    torch.testing.assert_close(compiled_books, eager_books, rtol=0, atol=1e-4)
