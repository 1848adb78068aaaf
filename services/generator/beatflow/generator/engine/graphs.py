"""CUDA-graph capture of the decode step, one graph per (slot bucket, attention-length bucket).

The step reads and writes only preallocated engine tensors and draws its randomness from
counters, so a captured graph can simply be replayed: one launch per step. Graphs share one
memory pool (they never run concurrently). Used only when the engine runs on a CUDA device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class StepGraphs:
    def __init__(self, step: Callable[[int, int, int], None], warmup: int = 2) -> None:
        self._step = step
        self._warmup = warmup
        self._graphs: dict[tuple[int, int, int], torch.cuda.CUDAGraph] = {}
        self._pool: Any = None

    def __len__(self) -> int:
        return len(self._graphs)

    def run(self, slots: int, length: int, width: int, before_capture: Callable[[], object]) -> None:
        """Replay the graph for this shape, capturing it first if new.

        ``before_capture`` returns a snapshot-restore callable: warm-up and capture run the step for
        real (mutating state), so the engine's state is saved before and restored after capture.
        """
        key = (slots, length, width)
        graph = self._graphs.get(key)
        if graph is None:
            restore = before_capture()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(self._warmup):
                    self._step(slots, length, width)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            # thread_local: other threads (the service decoding audio on the GPU) may keep working
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                self._step(slots, length, width)
            if self._pool is None:
                self._pool = graph.pool()
            self._graphs[key] = graph
            if callable(restore):
                restore()
        graph.replay()
