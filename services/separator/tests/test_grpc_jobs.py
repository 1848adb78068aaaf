"""The separator over real gRPC, real Redis and the S3 server, with the tiny model."""

from __future__ import annotations

import asyncio
import io
import json
import struct

import grpc
import julius
import numpy as np
import pytest
import soundfile as sf
import torch
from grpc_health.v1 import health_pb2

from beatflow.separator.config import SeparatorSettings
from beatflow.separator.server import create_server
from beatflow.separator.testsignals import encode, music_like
from beatflow.v1 import generator_pb2, jobs_pb2, separator_pb2

FOUR = ["bass", "drums", "other", "vocals"]


def read_stem(store, key: str) -> tuple[np.ndarray, int]:  # type: ignore[no-untyped-def]
    data, sr = sf.read(io.BytesIO(store.get_bytes(key)), dtype="float32", always_2d=True)
    return data, sr


async def test_health_turns_serving_once_the_model_is_loaded(separator_settings: SeparatorSettings) -> None:
    gs, port = await create_server(separator_settings)
    await gs.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            from grpc_health.v1 import health_pb2_grpc

            stub = health_pb2_grpc.HealthStub(channel)
            status = None
            for _ in range(200):
                status = (await stub.Check(health_pb2.HealthCheckRequest(service="beatflow.v1.Separator"))).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    break
                await asyncio.sleep(0.05)
            assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await gs.stop(1.0)


async def test_separation_job_yields_stems_that_sum_to_the_mix(client) -> None:  # type: ignore[no-untyped-def]
    mix = music_like(4.5, 44100, seed=1)
    key = client.store.put_bytes(encode(mix, 44100, "WAV", "FLOAT"), content_type="audio/wav")
    job = await client.separator.SubmitSeparation(separator_pb2.SeparateRequest(audio_blob=key, model="tiny"))
    assert job.kind == "separate"
    final, events = await client.wait_job(job.id)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    assert sorted(final.result_blobs) == FOUR

    progress = [ev.progress for ev in events]
    assert progress == sorted(progress), "progress went backwards"
    assert progress[-1] == pytest.approx(1.0)
    assert sum("segments" in ev.stage for ev in events) >= 2  # one event per processed segment

    total = np.zeros_like(mix)
    for name, stem_key in final.result_blobs.items():
        stem, sr = read_stem(client.store, stem_key)
        assert sr == 44100, name
        assert stem.shape == mix.shape, name
        total += stem
    assert np.abs(total - mix).max() < 1e-4
    record = json.loads(final.result_json)
    assert record["model"] == "tiny" and record["residual_stem"] == "other"
    assert record["frames"] == mix.shape[0] and record["sample_rate"] == 44100


async def test_mono_22k_input_two_stems_flac(client) -> None:  # type: ignore[no-untyped-def]
    mono = music_like(3.0, 22050, channels=1, seed=2)
    key = client.store.put_bytes(encode(mono, 22050, "WAV", "PCM_16"))
    decoded = sf.read(io.BytesIO(client.store.get_bytes(key)), dtype="float32")[0]
    job = await client.separator.SubmitSeparation(
        separator_pb2.SeparateRequest(
            audio_blob=key, two_stems="vocals", format=generator_pb2.AUDIO_FORMAT_FLAC, segment_s=2.0, overlap=0.0
        )
    )
    final, _ = await client.wait_job(job.id)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    assert sorted(final.result_blobs) == ["no_vocals", "vocals"]
    expected_mix = julius.resample_frac(torch.from_numpy(decoded), 22050, 44100).numpy()
    total = np.zeros((2 * mono.shape[0], 2), dtype=np.float32)
    for stem_key in final.result_blobs.values():
        assert client.store.get_bytes(stem_key)[:4] == b"fLaC"
        stem, sr = read_stem(client.store, stem_key)
        assert sr == 44100
        assert stem.shape == (2 * mono.shape[0], 2)  # model rate, mono duplicated to stereo
        total = total + stem
    assert np.abs(total - expected_mix[:, None]).max() < 1e-4  # 24-bit FLAC still nulls within 1e-4


async def test_cancel_stops_a_running_job(client) -> None:  # type: ignore[no-untyped-def]
    mix = music_like(40.0, 44100, seed=3)
    key = client.store.put_bytes(encode(mix, 44100, "WAV", "PCM_16"))
    job = await client.separator.SubmitSeparation(
        separator_pb2.SeparateRequest(audio_blob=key, segment_s=1.0, overlap=0.0)
    )  # 40 segments
    seen: list[jobs_pb2.JobEvent] = []
    cancelled_at: list[int] = []

    async def follow() -> None:
        async for ev in client.jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.id)):
            seen.append(ev)
            if ev.stage.startswith("separating") and not ev.stage.startswith("separating 0/") and not cancelled_at:
                cancelled_at.append(int(ev.stage.split()[1].split("/")[0]))
                await client.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.id))

    await asyncio.wait_for(follow(), 60)
    final = await client.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job.id))
    assert final.state == jobs_pb2.JOB_STATE_CANCELLED
    assert not final.result_blobs
    assert final.progress < 0.5
    done = [int(ev.stage.split()[1].split("/")[0]) for ev in seen if ev.stage.startswith("separating")]
    assert max(done) <= cancelled_at[0] + 1, f"kept going after the cancel at {cancelled_at}: {done}"


def wav_header(*, channels: int = 2, rate: int = 44100, bits: int = 16, data_bytes: int = 0) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("text", b"this is not audio at all, just some text" * 10, "not a supported audio file"),
        ("empty", b"", "empty"),
        ("truncated", wav_header(data_bytes=441000) + b"\x00" * 1000, "truncated"),
        ("zero-channels", wav_header(channels=0) + b"\x00" * 64, "channels"),
        ("absurd-rate", wav_header(rate=4_000_000_000 // 4) + b"\x00" * 64, "sample rate"),
        ("absurd-chunk", b"RIFF\xff\xff\xff\xffWAVEJUNK\xf0\xff\xff\xff" + b"\x00" * 64, "declares"),
        ("m4a", b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + b"\x00" * 64, "not supported"),
    ],
)
async def test_bad_uploads_are_refused_at_submit(client, name: str, payload: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    key = client.store.put_bytes(payload)
    before = set(client.store.list_keys())
    for call, req in [
        (client.separator.SubmitSeparation, separator_pb2.SeparateRequest(audio_blob=key)),
        (client.separator.SubmitAnalysis, separator_pb2.AnalyzeRequest(audio_blob=key)),
        (client.separator.AnalyzeAudio, separator_pb2.AnalyzeRequest(audio_blob=key)),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert message in (err.value.details() or ""), err.value.details()
    assert set(client.store.list_keys()) == before  # nothing written
    assert await client.app.queue.depth("separate") == 0


async def test_bad_options_and_limits_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    key = client.store.put_bytes(encode(music_like(3.0, 44100), 44100, "WAV", "PCM_16"))
    bad = [
        separator_pb2.SeparateRequest(audio_blob=key, model="no-such-model"),
        separator_pb2.SeparateRequest(audio_blob=key, two_stems="kazoo"),
        separator_pb2.SeparateRequest(audio_blob=key, shifts=99),
        separator_pb2.SeparateRequest(audio_blob=key, overlap=1.0),
        separator_pb2.SeparateRequest(audio_blob=key, segment_s=60.0),
        separator_pb2.SeparateRequest(audio_blob=key, residual_stem="kazoo"),
        separator_pb2.SeparateRequest(audio_blob=key, format=generator_pb2.AUDIO_FORMAT_MP3),
        separator_pb2.SeparateRequest(audio_blob="0" * 64),
        separator_pb2.SeparateRequest(audio_blob="../etc/passwd"),
    ]
    for req in bad:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await client.separator.SubmitSeparation(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, req
    client.app.settings.separator_max_upload_bytes = 1000
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.separator.SubmitSeparation(separator_pb2.SeparateRequest(audio_blob=key))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "over the limit" in (err.value.details() or "")
    client.app.settings.separator_max_upload_bytes = 10**9
    client.app.settings.separator_max_duration_s = 2.0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await client.separator.SubmitSeparation(separator_pb2.SeparateRequest(audio_blob=key))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "over the limit" in (err.value.details() or "")


async def test_audio_corrupted_past_the_header_fails_the_job_cleanly(client) -> None:  # type: ignore[no-untyped-def]
    flac = bytearray(encode(music_like(3.0, 44100), 44100, "FLAC"))
    flac[2000:-100] = np.random.default_rng(0).integers(0, 256, len(flac) - 2100, dtype=np.uint8).tobytes()
    key = client.store.put_bytes(bytes(flac))
    before = set(client.store.list_keys())
    job = await client.separator.SubmitSeparation(separator_pb2.SeparateRequest(audio_blob=key))
    final, _ = await client.wait_job(job.id)
    assert final.state == jobs_pb2.JOB_STATE_FAILED  # not retried: the same bytes fail every time
    assert final.attempts == 1
    assert "corrupted" in final.error
    assert not final.result_blobs
    assert set(client.store.list_keys()) == before


async def test_analysis_inline_and_as_a_job(client) -> None:  # type: ignore[no-untyped-def]
    from beatflow.separator.testsignals import chord_progression, click_track

    sr = 22050
    audio = click_track(128, 10.0, sr) + chord_progression("E", "minor", 10.0, sr, bpm=128)
    stereo = np.stack([audio, audio], axis=1) * 0.5
    key = client.store.put_bytes(encode(stereo, sr, "FLAC"))
    result = await client.separator.AnalyzeAudio(separator_pb2.AnalyzeRequest(audio_blob=key))
    assert result.bpm == pytest.approx(128, rel=0.02)
    assert (result.key_tonic, result.key_mode) == ("E", "minor")
    assert 0 < result.bpm_confidence <= 1 and 0 < result.key_confidence <= 1
    assert result.sample_rate == sr and result.channels == 2
    assert result.duration_s == pytest.approx(10.0, abs=1e-3)
    assert result.peak_dbfs == pytest.approx(20 * np.log10(np.abs(stereo).max()), abs=0.1)
    assert -40 < result.loudness_lufs < 0
    assert len(result.beat_times_s) >= 15 and result.downbeat_times_s
    assert set(result.downbeat_times_s) <= set(result.beat_times_s)

    job = await client.separator.SubmitAnalysis(separator_pb2.AnalyzeRequest(audio_blob=key))
    assert job.kind == "analyze"
    final, _ = await client.wait_job(job.id)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    record = json.loads(final.result_json)
    assert record["bpm"] == pytest.approx(result.bpm)
    assert record["key_tonic"] == "E" and record["loudness_lufs"] == pytest.approx(result.loudness_lufs)
    assert record["beat_times_s"] == pytest.approx(list(result.beat_times_s))
