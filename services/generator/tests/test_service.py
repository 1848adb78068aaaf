"""The generator through its real gRPC server, real Redis queue and the S3 blob store (tiny presets, CPU)."""

from __future__ import annotations

import asyncio
import json

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2

from beatflow.v1 import generator_pb2, jobs_pb2

from .conftest import TERMINAL, Client, StartFn

RATE = 32000
FRAME = RATE // 50  # samples per codec frame


def sine(freq: float, seconds: float, rate: int, channels: int = 1, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


async def test_health_and_model_info(gen: Client) -> None:
    resp = await gen.health.Check(health_pb2.HealthCheckRequest())
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    info = await gen.generator.GetModelInfo(generator_pb2.ModelInfoRequest())
    assert info.spec == "tiny"
    assert info.sample_rate == RATE and info.channels == 1 and info.frame_rate == 50
    assert info.supports_melody and info.melody_spec == "tiny-melody"
    assert info.backend == "engine" and "measured faster" in info.backend_reason  # auto on the CPU
    assert info.window_s == 30 and info.num_codebooks == 4


async def test_text_job_lifecycle_progress_and_audio(gen: Client) -> None:
    job = await gen.submit(
        prompt="lofi hip hop",
        hints=generator_pb2.MusicHints(bpm=85, mood="relaxed", instruments=["piano", "drums"], key="A minor"),
        duration_s=2.0,
        seed=7,
        format=generator_pb2.AUDIO_FORMAT_WAV,
    )
    assert job.state == jobs_pb2.JOB_STATE_QUEUED and job.kind == "generate"
    final, events = await gen.wait_job(job.id)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    states = [ev.state for ev in events]
    assert states[0] == jobs_pb2.JOB_STATE_QUEUED
    assert jobs_pb2.JOB_STATE_RUNNING in states and states[-1] == jobs_pb2.JOB_STATE_SUCCEEDED
    progress = [ev.progress for ev in events]
    assert progress == sorted(progress), "progress must be monotone"
    assert any(0 < p < 0.95 for p in progress), "intermediate decoding progress is reported"
    assert any("decoding" in ev.stage for ev in events)

    audio, rate = gen.audio(final.result_blobs["audio"])
    assert rate == RATE and audio.shape[1] == 1
    assert abs(audio.shape[0] - 2 * RATE) <= FRAME
    assert np.abs(audio).max() > 0
    record = json.loads(final.result_json)
    assert record["description"] == "lofi hip hop, relaxed, piano and drums, 85 bpm, in A minor"
    assert record["model"] == "tiny" and record["seed"] == 7 and record["duration_s"] == 2.0
    assert record["sampling"]["top_k"] == 250 and record["sampling"]["guidance_scale"] == 3.0
    assert record["batch_size"] == 1 and record["windows"] == 1 and record["sample_rate"] == RATE


async def test_same_seed_same_audio_other_seed_differs(gen: Client) -> None:
    common = {"prompt": "techno", "duration_s": 1.0}
    first = await gen.submit(seed=11, **common)
    a, _ = await gen.wait_job(first.id)
    # the same request again, this time batched with a request of another seed
    again, other = await asyncio.gather(gen.submit(seed=11, **common), gen.submit(seed=12, **common))
    b, _ = await gen.wait_job(again.id)
    c, _ = await gen.wait_job(other.id)
    for job in (a, b, c):
        assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED, job.error
    wav_a, _ = gen.audio(a.result_blobs["audio"])
    wav_b, _ = gen.audio(b.result_blobs["audio"])
    wav_c, _ = gen.audio(c.result_blobs["audio"])
    assert np.array_equal(wav_a, wav_b)
    assert a.result_blobs["audio"] == b.result_blobs["audio"]  # content-addressed: stored once
    assert not np.array_equal(wav_a, wav_c)


async def test_variations_and_formats(gen: Client) -> None:
    flac = generator_pb2.AUDIO_FORMAT_FLAC
    job = await gen.submit(prompt="jazz", duration_s=1.0, seed=3, num_variations=2, format=flac)
    mp3 = await gen.submit(prompt="jazz", duration_s=1.0, seed=3, format=generator_pb2.AUDIO_FORMAT_MP3)
    final, _ = await gen.wait_job(job.id)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    assert set(final.result_blobs) == {"audio", "audio.1"}
    one, rate = gen.audio(final.result_blobs["audio"])
    two, _ = gen.audio(final.result_blobs["audio.1"])
    assert rate == RATE and one.shape == two.shape and not np.array_equal(one, two)
    assert gen.store.stat(final.result_blobs["audio"]).content_type == "audio/flac"
    assert json.loads(final.result_json)["seeds"] == [3, 4]
    final_mp3, _ = await gen.wait_job(mp3.id)
    assert final_mp3.state == jobs_pb2.JOB_STATE_SUCCEEDED, final_mp3.error
    decoded, rate = gen.audio(final_mp3.result_blobs["audio"])
    assert rate == RATE and RATE <= decoded.shape[0] <= RATE + 4096  # MP3 adds encoder padding
    assert gen.store.stat(final_mp3.result_blobs["audio"]).content_type == "audio/mpeg"


async def test_cancel_stops_a_running_job(gen: Client) -> None:
    job = await gen.submit(prompt="ambient", duration_s=30.0, seed=1)
    running = False
    async for ev in gen.jobs.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.id)):
        if ev.state == jobs_pb2.JOB_STATE_RUNNING and ev.progress > 0:
            running = True
            break
    assert running
    await gen.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job.id))
    final, events = await gen.wait_job(job.id, timeout_s=15)
    assert final.state == jobs_pb2.JOB_STATE_CANCELLED
    assert not final.result_blobs
    assert final.progress < 0.9, "it stopped long before the end"
    # the worker is still up and serves the next job
    nxt = await gen.submit(prompt="ambient", duration_s=0.5, seed=1)
    done, _ = await gen.wait_job(nxt.id)
    assert done.state == jobs_pb2.JOB_STATE_SUCCEEDED, done.error
    assert events[-1].state == jobs_pb2.JOB_STATE_CANCELLED


async def test_hum_to_beat_from_a_stereo_44k_recording(gen: Client) -> None:
    hum = np.concatenate([sine(440.0, 1.0, 44100, 2), sine(523.25, 1.0, 44100, 2)])
    key = gen.upload_wav(hum, 44100)
    job = await gen.submit(prompt="trap beat", melody_blob=key, duration_s=2.0, seed=5)
    final, _ = await gen.wait_job(job.id)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    audio, rate = gen.audio(final.result_blobs["audio"])
    assert rate == RATE and abs(audio.shape[0] - 2 * RATE) <= FRAME
    record = json.loads(final.result_json)
    assert record["type"] == "hum-to-beat" and record["model"] == "tiny-melody"
    assert record["melody_blob"] == key and abs(record["melody_duration_s"] - 2.0) < 0.01


async def test_hum_to_beat_rejects_silence_and_too_short(gen: Client) -> None:
    silent = gen.upload_wav(np.zeros((RATE * 2, 1), dtype=np.float32), RATE)
    short = gen.upload_wav(sine(440.0, 0.3, RATE), RATE)
    not_audio = gen.store.put_bytes(b"this is not audio at all", content_type="text/plain")
    for key, words in [(silent, "silent"), (short, "too short"), (not_audio, "decode")]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await gen.submit(prompt="beat", melody_blob=key, duration_s=1.0)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in (err.value.details() or "")


async def test_continuation_of_an_audio_prompt(gen: Client) -> None:
    prompt = gen.upload_wav(sine(220.0, 1.5, 48000, 2), 48000)
    job = await gen.submit(prompt="continue this", prompt_audio_blob=prompt, duration_s=1.0, seed=9)
    final, _ = await gen.wait_job(job.id)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    audio, rate = gen.audio(final.result_blobs["audio"])
    record = json.loads(final.result_json)
    assert record["type"] == "continuation" and abs(record["prompt_duration_s"] - 1.5) <= 0.02
    assert rate == RATE and abs(audio.shape[0] - 2.5 * RATE) <= FRAME  # the prompt followed by 1 s of new audio


async def test_long_piece_crosses_the_window(start_generator: StartFn) -> None:
    # A 3 s window (1 s of context) instead of the default 30 s (10 s): the same two-window
    # composition at a tenth of the decoding.
    gen = await start_generator(generator_max_window_s=3.0, generator_context_s=1.0)
    job = await gen.submit(prompt="epic orchestral", duration_s=4.5, seed=2)
    final, events = await gen.wait_job(job.id, timeout_s=120)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    record = json.loads(final.result_json)
    assert record["window_s"] == 3.0 and record["windows"] == 2
    audio, rate = gen.audio(final.result_blobs["audio"])
    assert rate == RATE and abs(audio.shape[0] - 4.5 * RATE) <= FRAME
    progress = [ev.progress for ev in events]
    assert progress == sorted(progress)
    # the second window has real audio too, not silence
    assert np.abs(audio[4 * RATE :]).max() > 0


async def test_four_concurrent_requests_share_one_batch(start_generator: StartFn) -> None:
    gen = await start_generator(generator_max_batch=4, generator_max_wait_ms=3000)
    jobs = await asyncio.gather(*(gen.submit(prompt=f"song {i}", duration_s=1.0, seed=i) for i in range(4)))
    finals = [(await gen.wait_job(j.id))[0] for j in jobs]
    keys = set()
    for final in finals:
        assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
        record = json.loads(final.result_json)
        assert record["batch_jobs"] == 4 and record["batch_size"] == 4
        keys.add(final.result_blobs["audio"])
    assert len(keys) == 4, "each request got its own audio"
    assert gen.server.app is not None and gen.server.app.worker is not None
    assert gen.server.app.worker.batches_run == 1


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"prompt": "", "duration_s": 1}, "prompt is empty"),
        ({"prompt": "x" * 5000, "duration_s": 1}, "limit"),
        ({"prompt": "rock", "duration_s": 10_000}, "over the limit"),
        ({"prompt": "rock", "duration_s": -1}, "positive"),
        ({"prompt": "rock", "num_variations": 50}, "num_variations"),
        ({"prompt": "rock", "sampling": generator_pb2.SamplingOptions(top_p=1.5)}, "top_p"),
        ({"prompt": "rock", "sampling": generator_pb2.SamplingOptions(temperature=0)}, "temperature"),
        ({"prompt": "rock", "melody_blob": "not-a-key"}, "blob key"),
        ({"prompt": "rock", "hints": generator_pb2.MusicHints(bpm=5000)}, "bpm"),
    ],
)
async def test_bad_inputs_are_invalid_argument(gen: Client, fields: dict[str, object], words: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gen.submit(**fields)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (err.value.details() or "")


async def test_missing_upload_is_not_found_and_prompt_too_long_invalid(gen: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gen.submit(prompt="rock", prompt_audio_blob="0" * 64)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    long_prompt = gen.upload_wav(sine(220.0, 25.0, 8000), 8000)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gen.submit(prompt="rock", prompt_audio_blob=long_prompt)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "audio prompt" in (err.value.details() or "")


async def test_jobs_reach_terminal_states_only(gen: Client) -> None:
    job = await gen.submit(prompt="polka", duration_s=0.5, seed=1)
    final, events = await gen.wait_job(job.id)
    assert final.state in TERMINAL
    assert [ev.state for ev in events].count(jobs_pb2.JOB_STATE_SUCCEEDED) == 1


async def test_audio_streams_in_chunks_that_add_up_to_the_result(start_generator: StartFn) -> None:
    gen = await start_generator(generator_stream_chunk_s=0.5)
    job = await gen.submit(prompt="house", duration_s=3.0, seed=4)
    final, events = await gen.wait_job(job.id)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    chunk_keys = [ev.chunk_blob for ev in events if ev.chunk_blob]
    assert len(chunk_keys) >= 2, "audio arrived in several chunks before the result"
    assert all(ev.state == jobs_pb2.JOB_STATE_RUNNING for ev in events if ev.chunk_blob)
    chunks = [gen.audio(key)[0] for key in chunk_keys]
    streamed = np.concatenate(chunks)
    audio, _ = gen.audio(final.result_blobs["audio"])
    assert streamed.shape == audio.shape
    assert np.abs(streamed - audio).max() < 1e-3
    assert json.loads(final.result_json)["chunks"] == len(chunk_keys)


async def test_conform_record_shows_before_after_and_applied(gen: Client) -> None:
    job = await gen.submit(
        prompt="house",
        hints=generator_pb2.MusicHints(bpm=124, key="A minor"),
        duration_s=3.0,
        seed=3,
        loop=True,
    )
    final, _ = await gen.wait_job(job.id)
    assert final.state == jobs_pb2.JOB_STATE_SUCCEEDED, final.error
    record = json.loads(final.result_json)
    (report,) = record["conform"]
    assert report["conform"] is True  # on by default with a bpm or key hint
    assert report["requested"] == {"bpm": 124.0, "key": "A minor", "loop": True}
    for side in ("before", "after"):
        assert set(report[side]) == {"bpm", "bpm_confidence", "key", "key_confidence"}
    assert set(report["applied"]) == {"time_stretch", "pitch_shift_semitones", "loop"}
    audio, _ = gen.audio(final.result_blobs["audio"])
    assert abs(record["audio_duration_s"] - audio.shape[0] / RATE) < 1e-6

    plain = await gen.submit(prompt="house", duration_s=1.0, seed=3)
    final, _ = await gen.wait_job(plain.id)
    assert json.loads(final.result_json)["conform"] is None  # no bpm or key: off
