"""Server life cycle: health before and after the model loads, model options, idempotent submits."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beatflow.generator.server import create_server
from beatflow.v1 import generator_pb2, generator_pb2_grpc

from .conftest import StartFn, settings_for


async def test_not_serving_until_the_model_is_loaded(redis_url: str, s3_settings: dict[str, Any]) -> None:
    server, port = await create_server(settings_for(redis_url, s3_settings))
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        before = await health.Check(health_pb2.HealthCheckRequest())
        assert before.status == health_pb2.HealthCheckResponse.NOT_SERVING
        stub = generator_pb2_grpc.GeneratorStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetModelInfo(generator_pb2.ModelInfoRequest())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        await server.ready()
        await server.set_serving(True)
        after = await health.Check(health_pb2.HealthCheckRequest())
        assert after.status == health_pb2.HealthCheckResponse.SERVING
        assert (await stub.GetModelInfo(generator_pb2.ModelInfoRequest())).spec == "tiny"
    finally:
        await channel.close()
        await server.stop(1.0)


async def test_unloadable_model_falls_back_to_tiny_only_when_asked(redis_url: str, s3_settings: dict[str, Any]) -> None:
    from beatflow.generator.models import ModelLoadError

    strict, _ = await create_server(settings_for(redis_url, s3_settings, generator_model="./no/such/model"))
    with pytest.raises(ModelLoadError):
        await strict.ready()
    await strict.stop(0.1)
    lenient, _ = await create_server(
        settings_for(redis_url, s3_settings, generator_model="./no/such/model", generator_fallback_tiny=True)
    )
    await lenient.ready()
    assert lenient.app is not None and lenient.app.service.model_info()["spec"] == "tiny"
    await lenient.stop(0.1)


async def test_hum_to_beat_without_a_melody_model_is_a_failed_precondition(start_generator: StartFn) -> None:
    gen = await start_generator(generator_melody_model="none")
    info = await gen.generator.GetModelInfo(generator_pb2.ModelInfoRequest())
    assert not info.supports_melody
    t = np.arange(32000 * 2) / 32000
    key = gen.upload_wav((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None], 32000)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gen.submit(prompt="beat", melody_blob=key, duration_s=1.0)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "melody model" in (err.value.details() or "")


async def test_idempotency_key_returns_the_same_job(gen: Any) -> None:
    a = await gen.submit(prompt="rock", duration_s=0.5, idempotency_key="k-1", owner="alice")
    b = await gen.submit(prompt="rock", duration_s=0.5, idempotency_key="k-1", owner="alice")
    c = await gen.submit(prompt="rock", duration_s=0.5, idempotency_key="k-1", owner="bob")
    assert a.id == b.id and c.id != a.id
    assert a.owner == "alice"


def test_engine_decoder_is_sized_for_the_servers_window(redis_url: str, s3_settings: dict[str, Any]) -> None:
    """The engine must take the window from the server's settings, not from a fresh read of the environment."""
    from beatflow.generator.engine_decoder import EngineDecoder
    from beatflow.generator.model_loading import load_slots

    settings = settings_for(
        redis_url, s3_settings, generator_backend="engine", generator_max_window_s=40.0, generator_melody_model=""
    )
    slots = load_slots(settings)
    decoder = slots["text"].decoder
    try:
        assert isinstance(decoder, EngineDecoder)
        lm = slots["text"].lm
        assert decoder.engine.config.max_new_tokens == lm.steps_for_frames(lm.frames_for_seconds(40.0))
    finally:
        decoder.close()


async def test_closing_the_app_stops_the_engine_thread(redis_url: str, s3_settings: dict[str, Any]) -> None:
    import threading

    from beatflow.generator.server import GeneratorApp

    def engine_threads() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "decode-engine")

    before = engine_threads()
    settings = settings_for(redis_url, s3_settings, generator_backend="engine", generator_melody_model="")
    app = GeneratorApp(settings)
    await app.start()
    assert engine_threads() == before + 1
    await app.close()
    assert engine_threads() == before
