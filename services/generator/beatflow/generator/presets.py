"""Built-in model presets: MusicGen architectures with random weights, built offline.

``tiny`` and ``tiny-melody`` are a few MB and fast on a CPU (tests, offline demos).
``small-arch``, ``medium-arch``, ``large-arch`` and ``melody-arch`` have the real
shapes of the published checkpoints (benchmarks without downloadable weights).
Every preset is initialised from a fixed seed, so a preset is the same model in
every process: the same request with the same seed gives the same audio.

The text tokenizer is built locally too: a byte-level tokenizer (every UTF-8
byte is one token, ``</s>`` appended, T5 style) whose ids fit any text encoder
vocabulary of at least :data:`BYTE_VOCAB_SIZE` entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    EncodecConfig,
    GenerationConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    MusicgenMelodyConfig,
    MusicgenMelodyDecoderConfig,
    MusicgenMelodyForConditionalGeneration,
    PreTrainedTokenizerFast,
    T5Config,
)

PRESET_SEED = 20240607
SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]
BYTE_VOCAB_SIZE = len(SPECIAL_TOKENS) + 256
CODEBOOK_SIZE = 2048  # every MusicGen checkpoint; the pad/start token is CODEBOOK_SIZE


@dataclass(frozen=True)
class DecoderShape:
    hidden: int
    layers: int
    heads: int
    ffn: int


@dataclass(frozen=True)
class TextShape:
    d_model: int
    d_ff: int
    layers: int
    heads: int
    d_kv: int
    vocab: int


@dataclass(frozen=True)
class CodecShape:
    num_filters: int
    hidden: int
    lstm_layers: int


@dataclass(frozen=True)
class Preset:
    name: str
    decoder: DecoderShape
    text: TextShape
    codec: CodecShape
    melody: bool = False
    stereo: bool = False
    description: str = ""


T5_BASE = TextShape(d_model=768, d_ff=3072, layers=12, heads=12, d_kv=64, vocab=32128)
TINY_TEXT = TextShape(d_model=32, d_ff=64, layers=2, heads=2, d_kv=16, vocab=BYTE_VOCAB_SIZE)
ENCODEC_32K = CodecShape(num_filters=64, hidden=128, lstm_layers=2)
TINY_CODEC = CodecShape(num_filters=4, hidden=16, lstm_layers=1)

SMALL = DecoderShape(hidden=1024, layers=24, heads=16, ffn=4096)
MEDIUM = DecoderShape(hidden=1536, layers=48, heads=24, ffn=6144)
LARGE = DecoderShape(hidden=2048, layers=48, heads=32, ffn=8192)
TINY = DecoderShape(hidden=64, layers=2, heads=4, ffn=128)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("tiny", TINY, TINY_TEXT, TINY_CODEC, description="random tiny text-to-music model (tests, demos)"),
        Preset("tiny-melody", TINY, TINY_TEXT, TINY_CODEC, melody=True, description="random tiny melody model"),
        Preset("tiny-stereo", TINY, TINY_TEXT, TINY_CODEC, stereo=True, description="random tiny stereo model"),
        Preset("small-arch", SMALL, T5_BASE, ENCODEC_32K, description="musicgen-small shapes, random weights"),
        Preset("medium-arch", MEDIUM, T5_BASE, ENCODEC_32K, description="musicgen-medium shapes, random weights"),
        Preset("large-arch", LARGE, T5_BASE, ENCODEC_32K, description="musicgen-large shapes, random weights"),
        Preset("melody-arch", MEDIUM, T5_BASE, ENCODEC_32K, melody=True, description="musicgen-melody shapes"),
        Preset("stereo-small-arch", SMALL, T5_BASE, ENCODEC_32K, stereo=True, description="stereo-small shapes"),
    ]
}


def is_preset(spec: str) -> bool:
    return spec in PRESETS


_T5_SPECIAL_IDS: dict[str, Any] = {"pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0}


def _text_config(shape: TextShape) -> T5Config:
    return T5Config(
        vocab_size=shape.vocab,
        d_model=shape.d_model,
        d_kv=shape.d_kv,
        d_ff=shape.d_ff,
        num_layers=shape.layers,
        num_decoder_layers=shape.layers,
        num_heads=shape.heads,
        relative_attention_num_buckets=32,
        feed_forward_proj="relu",
        **_T5_SPECIAL_IDS,
    )


def _codec_config(shape: CodecShape, channels: int) -> EncodecConfig:
    # The EnCodec 32 kHz codec of MusicGen: hop 8*5*4*4 = 640 samples -> 50 frames/s,
    # 2.2 kbps -> 4 codebooks of 2048 entries, no normalisation, non-causal.
    return EncodecConfig(
        target_bandwidths=[2.2],
        sampling_rate=32000,
        audio_channels=1,  # stereo MusicGen encodes each channel separately
        normalize=False,
        chunk_length_s=None,
        overlap=None,
        hidden_size=shape.hidden,
        num_filters=shape.num_filters,
        num_residual_layers=1,
        upsampling_ratios=[8, 5, 4, 4],
        norm_type="weight_norm",
        kernel_size=7,
        last_kernel_size=7,
        residual_kernel_size=3,
        dilation_growth_rate=2,
        use_causal_conv=False,
        pad_mode="reflect",
        compress=2,
        num_lstm_layers=shape.lstm_layers,
        trim_right_ratio=1.0,
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=shape.hidden,
        use_conv_shortcut=False,
    )


def _decoder_kwargs(shape: DecoderShape, stereo: bool) -> dict[str, object]:
    return {
        "vocab_size": CODEBOOK_SIZE,
        "max_position_embeddings": 2048,
        "num_hidden_layers": shape.layers,
        "ffn_dim": shape.ffn,
        "num_attention_heads": shape.heads,
        "hidden_size": shape.hidden,
        "activation_function": "gelu",
        "dropout": 0.1,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "num_codebooks": 8 if stereo else 4,
        "audio_channels": 2 if stereo else 1,
        "pad_token_id": CODEBOOK_SIZE,
        "bos_token_id": CODEBOOK_SIZE,
        "scale_embedding": False,
    }


def generation_config_for(decoder_config: MusicgenDecoderConfig | MusicgenMelodyDecoderConfig) -> GenerationConfig:
    """The defaults the published checkpoints ship: sampling, top-k 250, guidance 3."""
    return GenerationConfig(
        decoder_start_token_id=CODEBOOK_SIZE,
        pad_token_id=CODEBOOK_SIZE,
        bos_token_id=CODEBOOK_SIZE,
        do_sample=True,
        top_k=250,
        guidance_scale=3.0,
        max_length=1500,
    )


def build_preset_model(
    name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> MusicgenForConditionalGeneration | MusicgenMelodyForConditionalGeneration:
    """Build preset ``name`` with weights drawn from :data:`PRESET_SEED` (same model every time)."""
    preset = PRESETS[name]
    text = _text_config(preset.text)
    channels = 2 if preset.stereo else 1
    codec = _codec_config(preset.codec, channels)
    model: MusicgenForConditionalGeneration | MusicgenMelodyForConditionalGeneration
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(PRESET_SEED)
        if torch.device(device).type == "cuda":
            torch.cuda.manual_seed_all(PRESET_SEED)
        with torch.device(device):
            if preset.melody:
                mdec = MusicgenMelodyDecoderConfig(**_decoder_kwargs(preset.decoder, preset.stereo))  # type: ignore[arg-type]
                mconfig = MusicgenMelodyConfig(
                    text_encoder=text, audio_encoder=codec, decoder=mdec, num_chroma=12, chroma_length=235
                )
                model = MusicgenMelodyForConditionalGeneration(mconfig)
                model.generation_config = generation_config_for(mdec)
            else:
                dec = MusicgenDecoderConfig(**_decoder_kwargs(preset.decoder, preset.stereo))  # type: ignore[arg-type]
                config = MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=dec)
                model = MusicgenForConditionalGeneration(config)
                model.generation_config = generation_config_for(dec)
            _init_codebooks(model)
    typed: Any = model
    typed = typed.to(dtype=dtype)
    typed.eval()
    return cast(MusicgenForConditionalGeneration | MusicgenMelodyForConditionalGeneration, typed)


@torch.no_grad()
def _init_codebooks(model: Any) -> None:
    """Random codebook entries: they are buffers, which weight init leaves at zero (every code the same sound)."""
    for layer in model.audio_encoder.quantizer.layers:
        book = layer.codebook
        book.embed.copy_(torch.randn_like(book.embed))
        book.embed_avg.copy_(book.embed)
        book.cluster_size.fill_(1.0)
        book.inited.fill_(True)


def build_byte_tokenizer() -> PreTrainedTokenizerFast:
    """A T5-style byte-level tokenizer built without any download: ids 0..2 special, then bytes."""
    byte_vocab = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in sorted(byte_vocab):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )
