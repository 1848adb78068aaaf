"""Load a MusicGen model from a spec: a hub id, a local directory or a built-in preset.

The returned :class:`LoadedModel` carries everything the decoders (``decoders.py``) and
the service need to know about the model (rates, codebooks, melody support)
plus the codec helpers that turn audio into decoder codes and back.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from transformers import (
    AutoConfig,
    AutoTokenizer,
    MusicgenForConditionalGeneration,
    MusicgenMelodyForConditionalGeneration,
    PreTrainedTokenizerBase,
)

from beatflow.common.errors import FailedPrecondition
from beatflow.generator import presets

log = logging.getLogger(__name__)

HUB_MODELS = (
    "facebook/musicgen-small",
    "facebook/musicgen-medium",
    "facebook/musicgen-large",
    "facebook/musicgen-melody",
    "facebook/musicgen-melody-large",
    "facebook/musicgen-stereo-small",
    "facebook/musicgen-stereo-medium",
    "facebook/musicgen-stereo-large",
    "facebook/musicgen-stereo-melody",
    "facebook/musicgen-stereo-melody-large",
)

MusicgenModel = MusicgenForConditionalGeneration | MusicgenMelodyForConditionalGeneration


class ModelLoadError(FailedPrecondition):
    """The model named by a spec could not be loaded (offline, missing files, bad spec)."""


@dataclass
class LoadedModel:
    """A MusicGen model ready for inference, with what callers need to know about it."""

    spec: str
    model: MusicgenModel
    tokenizer: PreTrainedTokenizerBase
    sample_rate: int  # audio samples per second (32 kHz for every MusicGen)
    frame_rate: float  # codec frames (decoder steps) per second of audio (50)
    audio_channels: int  # 1 mono, 2 stereo
    num_codebooks: int  # decoder codebooks (4 mono, 8 stereo: left/right interleaved)
    is_melody: bool
    device: torch.device
    dtype: torch.dtype
    chroma_rate: float = 32000 / 4096  # melody conditioning frames per second
    chroma_length: int = 235  # chroma frames the melody model attends to (its 30 s window)
    num_chroma: int = 12
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def channel_codebooks(self) -> int:
        """Codebooks per audio channel: the delay pattern spans this many steps."""
        return self.num_codebooks // self.audio_channels

    @property
    def pad_token_id(self) -> int:
        config: Any = self.model.config
        return int(config.decoder.pad_token_id)

    def steps_for_frames(self, frames: int) -> int:
        """Decoder steps (``max_new_tokens``) that produce ``frames`` new codec frames."""
        return frames + self.channel_codebooks - 1

    def frames_for_seconds(self, seconds: float) -> int:
        return max(1, round(seconds * self.frame_rate))

    def samples_for_frames(self, frames: int) -> int:
        return round(frames * self.sample_rate / self.frame_rate)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    @torch.inference_mode()
    def encode_audio(self, wav: torch.Tensor) -> torch.Tensor:
        """Audio ``(channels, samples)`` at the model rate -> codes ``(num_codebooks, frames)``.

        Stereo models encode left and right separately and interleave their
        codebooks (left 0, right 0, left 1, ...), as the decoder expects.
        """
        codec: Any = self.model.audio_encoder
        wav = wav.to(self.device, dtype=self.dtype)
        if self.audio_channels == 1:
            mono = wav.mean(dim=0, keepdim=True) if wav.shape[0] > 1 else wav
            out = codec.encode(mono[None], bandwidth=None)
            codes: torch.Tensor = out.audio_codes[0, 0]  # (frames=1, batch, K, T) -> (K, T)
            return codes.long()
        if wav.shape[0] == 1:
            wav = wav.expand(2, -1)
        left = codec.encode(wav[None, :1]).audio_codes[0, 0]
        right = codec.encode(wav[None, 1:2]).audio_codes[0, 0]
        codes = torch.empty((2 * left.shape[0], left.shape[1]), dtype=torch.long, device=left.device)
        codes[0::2] = left
        codes[1::2] = right
        return codes

    @torch.inference_mode()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(num_codebooks, frames)`` -> float32 audio ``(audio_channels, samples)`` on the CPU."""
        codec: Any = self.model.audio_encoder
        codes = codes.to(self.device).long()
        if self.audio_channels == 1:
            audio = codec.decode(codes[None, None], [None]).audio_values[0]
        else:
            left = codec.decode(codes[None, None, 0::2], [None]).audio_values[0]
            right = codec.decode(codes[None, None, 1::2], [None]).audio_values[0]
            audio = torch.cat([left, right], dim=0)
        return audio.float().cpu()

    def info(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "audio_channels": self.audio_channels,
            "num_codebooks": self.num_codebooks,
            "is_melody": self.is_melody,
        }


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    return dev


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``auto``: float16/bfloat16 are slower than float32 in plain generate() on small batches, so float32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "auto": torch.float32,
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "half": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if dtype not in names:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
    return names[dtype]


def _wrap(spec: str, model: MusicgenModel, tokenizer: PreTrainedTokenizerBase, device: torch.device) -> LoadedModel:
    config: Any = model.config
    codec = config.audio_encoder
    decoder = config.decoder
    is_melody = isinstance(model, MusicgenMelodyForConditionalGeneration)
    sample_rate = int(codec.sampling_rate)
    hop = 1
    for r in codec.upsampling_ratios:
        hop *= int(r)
    loaded = LoadedModel(
        spec=spec,
        model=model,
        tokenizer=tokenizer,
        sample_rate=sample_rate,
        frame_rate=sample_rate / hop,
        audio_channels=int(decoder.audio_channels),
        num_codebooks=int(decoder.num_codebooks),
        is_melody=is_melody,
        device=device,
        dtype=next(model.parameters()).dtype,
    )
    if is_melody:
        loaded.chroma_length = int(getattr(config, "chroma_length", 235))
        loaded.num_chroma = int(getattr(config, "num_chroma", 12))
    return loaded


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """A quick TCP connect to the hub, so an offline machine fails in seconds, not after retries."""
    url = urlparse(_hub_endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def _from_pretrained(
    spec: str, dtype: torch.dtype, *, local_only: bool
) -> tuple[MusicgenModel, PreTrainedTokenizerBase]:
    config = AutoConfig.from_pretrained(spec, local_files_only=local_only)
    cls: type[MusicgenModel]
    if config.model_type == "musicgen_melody":
        cls = MusicgenMelodyForConditionalGeneration
    elif config.model_type == "musicgen":
        cls = MusicgenForConditionalGeneration
    else:
        raise ModelLoadError(f"model spec {spec!r} is a {config.model_type!r} model, not MusicGen")
    model = cls.from_pretrained(spec, dtype=dtype, local_files_only=local_only)
    tokenizer = AutoTokenizer.from_pretrained(spec, local_files_only=local_only)
    return model, tokenizer


def load_model(spec: str, device: str | torch.device = "cpu", dtype: str | torch.dtype = torch.float32) -> LoadedModel:
    """Load ``spec`` onto ``device`` in ``dtype``.

    ``spec`` is a preset name (:data:`presets.PRESETS`), a local directory
    saved with ``save_pretrained`` (model + tokenizer files), or a hub id such
    as ``facebook/musicgen-small`` (honours ``HF_HUB_OFFLINE`` and the local
    cache). Raises :class:`ModelLoadError` naming the spec and the ``tiny``
    preset when the model cannot be loaded.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if presets.is_preset(spec):
        model = presets.build_preset_model(spec, device=dev, dtype=dt)
        return _wrap(spec, model, presets.build_byte_tokenizer(), dev)
    where = "local directory" if Path(spec).is_dir() else "hub model"
    if where == "hub model" and (spec.startswith((".", "/")) or os.sep in spec.strip("/").replace("/", "", 1)):
        raise ModelLoadError(
            f"model spec {spec!r} is neither a preset ({', '.join(presets.PRESETS)}), an existing local "
            "directory nor a hub id; use the 'tiny' preset for offline tests and demos"
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
    try:
        if where == "local directory" or offline:
            model, tokenizer = _from_pretrained(spec, dt, local_only=True)
        else:
            try:  # the local cache first: no network round trips when the files are there
                model, tokenizer = _from_pretrained(spec, dt, local_only=True)
            except ModelLoadError:
                raise
            except Exception:
                if not hub_reachable():
                    raise ConnectionError(f"the hub ({_hub_endpoint()}) cannot be reached from here") from None
                model, tokenizer = _from_pretrained(spec, dt, local_only=False)
    except ModelLoadError:
        raise
    except Exception as exc:  # every loader failure becomes one clear message
        hint = " (HF_HUB_OFFLINE is set and it is not in the local cache)" if offline else ""
        raise ModelLoadError(
            f"could not load MusicGen {where} {spec!r}{hint}: {type(exc).__name__}: {exc}. "
            "Without network access or downloaded weights use the built-in 'tiny' preset "
            "(BEATFLOW_GENERATOR_MODEL=tiny, or BEATFLOW_GENERATOR_FALLBACK_TINY=true)."
        ) from exc
    moved: Any = model
    moved = moved.to(dev)
    moved.eval()
    return _wrap(spec, moved, tokenizer, dev)
