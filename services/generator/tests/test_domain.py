"""Domain parts of the generator: windows, hints, chroma, sampling, the generate() decoder, loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from beatflow.common.blobstore import BlobStore
from beatflow.common.errors import InvalidArgument
from beatflow.generator import audio_files
from beatflow.generator.chroma import chroma_features
from beatflow.generator.decoders import DecodeRequest, Sampling
from beatflow.generator.hf_generate import GenerateDecoder, request_generator, sample_rows
from beatflow.generator.longform import WindowedPiece, WindowRunner, plan_windows, window_seed
from beatflow.generator.models import LoadedModel, ModelLoadError, load_model
from beatflow.generator.prompts import Hints, describe
from beatflow.generator.request import GenerationSpec, Limits, validate


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    torch.set_num_threads(1)
    return load_model("tiny")


def test_windows_cover_the_piece_and_keep_context() -> None:
    windows = plan_windows(new_frames=2250, prompt_frames=0, window_frames=1500, context_frames=500)
    assert [(w.prompt_frames, w.new_frames) for w in windows] == [(0, 1500), (500, 750)]
    assert windows[1].start_frame == 1000  # the prompt of window 1 is the last 10 s of window 0
    many = plan_windows(new_frames=5000, prompt_frames=100, window_frames=1500, context_frames=500)
    assert sum(w.new_frames for w in many) == 5000
    assert all(w.prompt_frames + w.new_frames <= 1500 for w in many)
    assert plan_windows(10, 0, 1500, 500)[0].new_frames == 10
    with pytest.raises(ValueError):
        plan_windows(10, 1500, 1500, 500)


def test_window_seeds_are_distinct_and_stable() -> None:
    assert window_seed(42, 0) == 42
    seeds = {window_seed(42, i) for i in range(10)}
    assert len(seeds) == 10 and window_seed(42, 3) == window_seed(42, 3)
    assert all(0 <= s < 2**63 for s in seeds)


def test_hints_fold_into_the_description() -> None:
    hints = Hints(bpm=120, mood="happy", genre="house", key="C major", instruments=("synth", "bass", "drums"))
    assert (
        describe("  summer   anthem ", hints)
        == "summer anthem, house, happy, synth, bass and drums, 120 bpm, in C major"
    )
    assert describe("rock", Hints()) == "rock"
    assert describe("", Hints(genre="jazz")) == "jazz"


def test_validation_fills_defaults_and_rejects_out_of_range() -> None:
    limits = Limits(max_duration_s=60, default_duration_s=8, max_variations=3)
    spec = validate(GenerationSpec(prompt="rock"), limits)
    assert spec.duration_s == 8 and spec.seed is not None and spec.num_variations == 1
    assert GenerationSpec.from_dict(spec.to_dict()) == spec
    for bad in [
        GenerationSpec(prompt="rock", duration_s=61),
        GenerationSpec(prompt="rock", num_variations=4),
        GenerationSpec(prompt="rock", sampling=Sampling(top_k=5000)),
        GenerationSpec(prompt="rock", guidance_scale=float("nan")),
        GenerationSpec(prompt="rock", format="ogg"),
        GenerationSpec(prompt="   "),
    ]:
        with pytest.raises(InvalidArgument):
            validate(bad, limits)


@pytest.mark.parametrize(("freq", "pitch_class"), [(261.63, 0), (293.66, 2), (392.0, 7), (440.0, 9), (493.88, 11)])
def test_chroma_finds_the_pitch_class(freq: float, pitch_class: int) -> None:
    rate = 32000
    t = np.arange(rate * 2) / rate
    chroma = chroma_features(np.sin(2 * np.pi * freq * t), rate)
    assert chroma.shape == (int(2 * rate / 4096) + 1, 12)
    assert torch.all(chroma.sum(dim=1) == 1)  # one-hot per frame
    assert torch.all(chroma.argmax(dim=1) == pitch_class)


def test_sampling_is_per_request_and_seeded() -> None:
    logits = torch.randn(8, 2048)
    greedy = sample_rows(logits, [Sampling(greedy=True)] * 2, [request_generator(0, torch.device("cpu"))] * 2, 4)
    assert torch.equal(greedy, logits.argmax(dim=-1))
    top1 = sample_rows(logits, [Sampling(top_k=1)] * 2, [request_generator(i, torch.device("cpu")) for i in (1, 2)], 4)
    assert torch.equal(top1, logits.argmax(dim=-1))
    a = sample_rows(
        logits, [Sampling(), Sampling(top_p=0.9)], [request_generator(s, torch.device("cpu")) for s in (5, 6)], 4
    )
    b = sample_rows(
        logits, [Sampling(), Sampling(top_p=0.9)], [request_generator(s, torch.device("cpu")) for s in (5, 6)], 4
    )
    assert torch.equal(a, b)
    # a request's tokens do not depend on its neighbour in the batch
    c = sample_rows(logits, [Sampling(), Sampling()], [request_generator(s, torch.device("cpu")) for s in (5, 99)], 4)
    assert torch.equal(a[:4], c[:4])
    top5 = logits[:4].topk(5).indices
    d = sample_rows(logits[:4], [Sampling(top_k=5)], [request_generator(7, torch.device("cpu"))], 4)
    assert all(int(d[i]) in top5[i].tolist() for i in range(4))


def test_generate_decoder_greedy_matches_plain_generate(tiny: LoadedModel) -> None:
    decoder = GenerateDecoder(tiny)
    reqs = [
        DecodeRequest("a", "lofi beat", 20, 1, Sampling(greedy=True)),
        DecodeRequest("b", "rock guitar", 12, 2, Sampling(greedy=True)),
    ]
    results = decoder.decode(reqs)
    assert [r.codes.shape for r in results if r.codes is not None] == [(4, 20), (4, 12)]
    inputs = tiny.tokenize(["lofi beat", "rock guitar"])
    ref = tiny.model.generate(**inputs, do_sample=False, guidance_scale=3.0, max_new_tokens=tiny.steps_for_frames(20))
    assert results[0].codes is not None
    ours = tiny.decode_codes(results[0].codes)
    assert ours.shape == (1, 20 * 640)
    assert torch.allclose(ref[0].float(), ours, atol=1e-5)


def test_progress_and_cancellation_inside_generate(tiny: LoadedModel) -> None:
    decoder = GenerateDecoder(tiny)
    seen: list[tuple[str, int, int]] = []
    results = decoder.decode(
        [DecodeRequest("a", "x", 30, 1), DecodeRequest("b", "y", 30, 2)],
        on_step=lambda rid, done, total: seen.append((rid, done, total)),
        is_cancelled=lambda rid: rid == "b" and len(seen) > 10,
    )
    a_steps = [d for rid, d, _ in seen if rid == "a"]
    assert a_steps == list(range(1, 34)) and {t for _, _, t in seen} == {33}
    assert results[0].codes is not None and not results[0].cancelled
    assert results[1].cancelled and results[1].codes is None
    stopped = decoder.decode([DecodeRequest("c", "z", 500, 3)], is_cancelled=lambda rid: True)
    assert stopped[0].cancelled and stopped[0].steps <= 2


def test_codec_round_trip_and_long_composition(tiny: LoadedModel) -> None:
    runner = WindowRunner(tiny, GenerateDecoder(tiny), window_s=1.0, context_s=0.4)
    piece = WindowedPiece("p", "drums", 120, 4, Sampling(), 3.0)
    runner.run([piece])
    assert piece.codes is not None and piece.codes.shape == (4, 120) and len(piece.windows) == 4
    wav = tiny.decode_codes(piece.codes)
    assert wav.shape == (1, 120 * 640)
    again = tiny.encode_audio(wav)
    assert again.shape == (4, 120)


def test_presets_are_the_same_model_every_time() -> None:
    a, b = load_model("tiny"), load_model("tiny")
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    )
    melody = load_model("tiny-melody")
    assert melody.is_melody and melody.sample_rate == 32000 and melody.frame_rate == 50


def test_unloadable_spec_names_the_tiny_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        load_model("facebook/musicgen-nonexistent")
    assert "facebook/musicgen-nonexistent" in err.value.message and "tiny" in err.value.message
    with pytest.raises(ModelLoadError):
        load_model("./no/such/dir")


def test_audio_formats_round_trip() -> None:
    wav = (0.2 * np.sin(np.arange(16000) / 5)).astype(np.float32)[None]
    for fmt in ("wav", "flac", "mp3"):
        back, rate = audio_files.decode(audio_files.encode(wav, 32000, fmt))
        assert rate == 32000 and back.shape[0] == 1 and back.shape[1] >= 16000
    assert audio_files.is_silent(np.zeros((1, 1000), dtype=np.float32))
    assert not audio_files.is_silent(wav)
    with pytest.raises(InvalidArgument):
        audio_files.decode(b"garbage bytes")


def test_melody_model_auto_follows_the_main_model(tiny: LoadedModel) -> None:
    from beatflow.generator.model_loading import melody_spec_for

    assert melody_spec_for("auto", tiny) == ("tiny-melody", False)
    assert melody_spec_for("none", tiny) == ("", False)
    assert melody_spec_for("facebook/musicgen-melody", tiny) == ("facebook/musicgen-melody", True)


def test_a_saved_model_directory_loads_like_a_hub_checkpoint(tiny: LoadedModel, tmp_path: Path) -> None:
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    assert loaded.spec == str(tmp_path) and not loaded.is_melody and loaded.num_codebooks == 4
    ours, theirs = tiny.model.state_dict(), loaded.model.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert loaded.tokenize(["lofi"])["input_ids"].tolist() == tiny.tokenize(["lofi"])["input_ids"].tolist()


def test_stereo_model_gives_two_channels_and_takes_stereo_prompts() -> None:
    stereo = load_model("tiny-stereo")
    assert stereo.audio_channels == 2 and stereo.num_codebooks == 8 and stereo.channel_codebooks == 4
    decoder = GenerateDecoder(stereo)
    first = decoder.decode([DecodeRequest("a", "wide pads", 25, 1)])[0]
    assert first.codes is not None and first.codes.shape == (8, 25)
    wav = stereo.decode_codes(first.codes)
    assert wav.shape == (2, 25 * 640)
    prompt = stereo.encode_audio(wav)
    assert prompt.shape == (8, 25)
    more = decoder.decode([DecodeRequest("b", "wide pads", 10, 2, prompt_codes=prompt)])[0]
    assert more.codes is not None and more.codes.shape == (8, 10)


@pytest.mark.parametrize("role", ["melody", "prompt"])
async def test_uploads_with_nan_or_inf_samples_are_rejected(s3_store: BlobStore, role: str) -> None:
    import io

    import soundfile as sf

    from beatflow.generator.upload_checks import check_upload

    t = np.arange(32000 * 2) / 32000
    wav = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for bad in (np.nan, np.inf):
        wav_bad = wav.copy()
        wav_bad[100] = bad
        buf = io.BytesIO()
        sf.write(buf, wav_bad, 32000, format="WAV", subtype="FLOAT")
        key = s3_store.put_bytes(buf.getvalue(), content_type="audio/wav")
        with pytest.raises(InvalidArgument, match="NaN or infinite"):
            await check_upload(s3_store, key, role, Limits())
