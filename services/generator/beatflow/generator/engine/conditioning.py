"""Per-request conditioning, computed once when a request is admitted.

* text models: the text encoder's states, projected, become cross-attention keys/values (the
  unconditional row of guidance uses all-zero states);
* melody models: chroma features and text states are prepended to the decoder input as a prefix
  (the unconditional row uses the "no melody" chroma and zero text states);
* continuation: the prompt audio's codec codes become the start of the decoder's token grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from beatflow.generator.engine.types import EngineRequest


@dataclass
class Conditioning:
    cross_states: torch.Tensor | None = None  # (2, E, hidden): cond, uncond
    cross_valid: torch.Tensor | None = None  # (2, E) bool: which positions cross-attention sees
    prefix: torch.Tensor | None = None  # (2, C, hidden): melody prefix, cond and uncond
    prompt_codes: torch.Tensor | None = None  # (codebooks, frames)


class Conditioner:
    """Turns an :class:`EngineRequest` into the tensors the decoder needs, with the model's own encoders."""

    def __init__(self, model: Any, tokenizer: Any | None, max_text_tokens: int, dtype: torch.dtype) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_text_tokens = max_text_tokens
        self.dtype = dtype
        self.melody = hasattr(model.config, "chroma_length")
        self.num_codebooks = model.decoder.config.num_codebooks
        self.audio_channels = getattr(model.decoder.config, "audio_channels", 1)

    @property
    def device(self) -> torch.device:
        return next(self.model.decoder.parameters()).device

    def _tokens(self, req: EngineRequest) -> tuple[torch.Tensor, torch.Tensor]:
        if req.input_ids is not None:
            ids = req.input_ids.reshape(1, -1)
            mask = req.attention_mask.reshape(1, -1) if req.attention_mask is not None else torch.ones_like(ids)
        else:
            if self.tokenizer is None:
                raise ValueError("the engine has no tokenizer: pass input_ids")
            enc = self.tokenizer(
                [req.text or ""], return_tensors="pt", truncation=True, max_length=self.max_text_tokens
            )
            ids, mask = enc["input_ids"], enc["attention_mask"]
        ids, mask = ids[:, : self.max_text_tokens], mask[:, : self.max_text_tokens]
        return ids.to(self.device), mask.to(self.device)

    def _text_states(self, req: EngineRequest) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected text states (1, E, hidden) and mask (1, E), in the projection's dtype."""
        ids, mask = self._tokens(req)
        encoder = self.model.text_encoder
        states = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        proj = getattr(self.model, "enc_to_dec_proj", None)
        if proj is not None:
            states = proj(states.to(proj.weight.dtype))
        return states, mask

    def _chroma(self, req: EngineRequest) -> tuple[torch.Tensor, torch.Tensor]:
        """(cond, uncond) chroma prefixes (1, chroma_length, hidden) as transformers builds them."""
        cfg = self.model.config
        proj = getattr(self.model, "audio_enc_to_dec_proj", None)
        dtype = proj.weight.dtype if proj is not None else self.dtype
        if req.melody_chroma is not None:
            cond = req.melody_chroma.reshape(1, -1, cfg.num_chroma).to(device=self.device, dtype=dtype)
            null = torch.zeros_like(cond)
        else:
            null = torch.zeros((1, 1, cfg.num_chroma), device=self.device, dtype=dtype)
            cond = null
        null[:, :, 0] = 1
        if req.melody_chroma is None:
            cond = null
        out = []
        for x in (cond, null):
            if proj is not None:
                x = proj(x)
            if x.shape[1] < cfg.chroma_length:
                x = x.repeat(1, math.ceil(cfg.chroma_length / x.shape[1]), 1)
            out.append(x[:, : cfg.chroma_length])
        return out[0], out[1]

    def prompt_codes(self, req: EngineRequest) -> torch.Tensor | None:
        if req.prompt_codes is not None:
            return req.prompt_codes.to(torch.long).reshape(self.num_codebooks, -1)
        if req.prompt_audio is None:
            return None
        codec = self.model.audio_encoder
        audio = req.prompt_audio.to(device=self.device, dtype=next(codec.parameters()).dtype)
        if audio.dim() == 1:
            audio = audio[None]
        if self.audio_channels == 2:
            if audio.shape[0] == 1:
                audio = audio.repeat(2, 1)
            left = codec.encode(input_values=audio[None, :1]).audio_codes[0, 0]
            right = codec.encode(input_values=audio[None, 1:2]).audio_codes[0, 0]
            codes = torch.stack([left, right], dim=1).reshape(self.num_codebooks, -1)
        else:
            codes = codec.encode(input_values=audio[None, :1]).audio_codes[0, 0]
        return codes.to(torch.long).cpu()

    @torch.no_grad()
    def __call__(self, req: EngineRequest) -> Conditioning:
        out = Conditioning(prompt_codes=self.prompt_codes(req))
        states, mask = self._text_states(req)
        if self.melody:
            cond_chroma, null_chroma = self._chroma(req)
            text = (states * mask[..., None]).to(self.dtype)
            cond = torch.cat([cond_chroma.to(self.dtype), text], dim=1)
            uncond = torch.cat([null_chroma.to(self.dtype), torch.zeros_like(text)], dim=1)
            out.prefix = torch.cat([cond, uncond], dim=0)
        else:
            cond = (states * mask[..., None]).to(self.dtype)
            out.cross_states = torch.cat([cond, torch.zeros_like(cond)], dim=0)
            valid = mask.to(torch.bool)
            out.cross_valid = torch.cat([valid, torch.ones_like(valid)], dim=0)
        return out
