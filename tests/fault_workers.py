"""Generator and separator worker processes forked from one warm parent, for the kill loop.

Starting a service process costs seconds of imports and model loading; the kill loop
needs ten workers to kill. This parent imports everything and loads the tiny models
once, then forks a worker for each line on stdin (``generator`` or ``separator``) and
prints the child's pid. Each child runs the service's own worker (``GeneratorApp`` or
``SeparatorApp`` with its real claim loop) on the stack's Redis, configured from the
same ``BEATFLOW_*`` environment, until it is killed. No gRPC object exists in the
parent, so forking is safe for gRPC; torch runs one thread.
"""

from __future__ import annotations

import asyncio
import os
import sys

import torch


async def _generator(model: object) -> None:
    from beatflow.generator.config import GeneratorSettings
    from beatflow.generator.server import GeneratorApp

    app = GeneratorApp(GeneratorSettings(), model=model)  # type: ignore[arg-type]
    await app.start()
    await asyncio.Event().wait()


async def _separator() -> None:
    from beatflow.separator.config import SeparatorSettings
    from beatflow.separator.server import build_app

    app = await build_app(SeparatorSettings())
    await app.ready()
    await asyncio.Event().wait()


def main() -> None:
    torch.set_num_threads(1)
    from beatflow.generator.config import GeneratorSettings
    from beatflow.generator.models import load_model
    from beatflow.separator import server as _separator_server  # noqa: F401 - imported before forking

    settings = GeneratorSettings()
    model = load_model(settings.generator_model, settings.generator_device, settings.generator_dtype)
    print("ready", flush=True)
    for line in sys.stdin:
        kind = line.strip()
        if kind not in ("generator", "separator"):
            continue
        pid = os.fork()
        if pid == 0:
            try:
                asyncio.run(_generator(model) if kind == "generator" else _separator())
            finally:
                os._exit(0)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
