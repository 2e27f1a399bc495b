"""Shared by the DDP tests: a free TCP port, and running a worker on several processes with a deadline."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, args: tuple, out: Path, world: int = 2, deadline_s: float = 150.0) -> None:
    """Run ``fn(rank, *args)`` on ``world`` processes; re-raise a child's failure (its ``error_rank*.txt`` files
    in ``out``), fail after ``deadline_s`` with the children's ``stacks_rank*.txt`` (a hang in a collective)."""
    context = mp.spawn(fn, args=args, nprocs=world, join=False)
    deadline = time.monotonic() + deadline_s
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                stacks = "\n".join(p.read_text() for p in sorted(out.glob("stacks_rank*.txt")))
                pytest.fail(f"DDP workers did not finish within {deadline_s:.0f} s (hang in a collective?)\n{stacks}")
    except mp.ProcessRaisedException as exc:
        details = "\n".join(p.read_text() for p in sorted(out.glob("error_rank*.txt"))) or str(exc)
        raise AssertionError(f"a DDP worker failed:\n{details}") from None
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join(5)
