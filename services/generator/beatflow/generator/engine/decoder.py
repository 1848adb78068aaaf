"""The MusicGen decoder run on the loaded model's own modules, over a static key/value cache.

Nothing here copies a weight: every projection calls the model's ``nn.Linear``/``nn.LayerNorm``
modules. What differs from ``transformers`` is the cache: one preallocated tensor per layer with a
row per (slot, cond/uncond) pair, written at each row's own position, so requests at different
positions decode together and the step has fixed shapes (for CUDA graphs).

With ``fused_qkv`` the query/key/value projections of each self-attention (and the key/value
projections of each cross-attention, which read the same conditioning states) run as one GEMM on
one weight: the model's own ``q_proj``/``k_proj``/``v_proj`` weights are rebound as row blocks of
that weight (``fuse_linears``), so there is still one copy of every weight, shared with the model,
and ``generate()`` on the same model computes with the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass
class DecoderInfo:
    hidden: int
    heads: int
    head_dim: int
    layers: int
    num_codebooks: int
    vocab: int
    audio_channels: int
    pad_token: int
    cross_attention: bool


def fuse_linears(owner: Any, name: str, linears: list[Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One weight (and bias) whose row blocks are ``linears``' weights, in order: ``F.linear`` on it
    computes all of them at once, its output their outputs side by side.

    The modules' parameters are rebound (``.data``) as views of the fused tensor, so no second copy
    of the weights exists and the modules compute as before. The fused tensors are remembered on
    ``owner`` under ``name`` and reused while the parameters still live in them (another engine on
    the same model shares them; a later ``.to()`` of the model replaces the parameters, and then
    they are fused afresh).
    """
    weights = [lin.weight for lin in linears]
    biases = [lin.bias for lin in linears]
    cached = owner.__dict__.get("_beatflow_fused", {}).get(name)
    ptrs = [w.data_ptr() for w in weights] + [b.data_ptr() for b in biases if b is not None]
    if cached is not None and cached[2] == ptrs:
        return cached[0], cached[1]
    with torch.no_grad():
        weight = torch.cat([w.detach() for w in weights])
        bias = None if any(b is None for b in biases) else torch.cat([b.detach() for b in biases])
        start = 0
        for lin in linears:
            rows = lin.weight.shape[0]
            lin.weight.data = weight[start : start + rows]
            if bias is not None:
                lin.bias.data = bias[start : start + rows]
            start += rows
    ptrs = [lin.weight.data_ptr() for lin in linears] + (
        [lin.bias.data_ptr() for lin in linears] if bias is not None else []
    )
    owner.__dict__.setdefault("_beatflow_fused", {})[name] = (weight, bias, ptrs)
    return weight, bias


class DecoderView:
    """Handles on the decoder modules of a ``MusicgenForConditionalGeneration`` or its melody sibling."""

    def __init__(self, model: Any, fused_qkv: bool = False) -> None:
        causal_lm = model.decoder
        self.core = causal_lm.model.decoder
        self.lm_heads: list[Any] = list(causal_lm.lm_heads)
        self.layers: list[Any] = list(self.core.layers)
        self.embed_tokens: list[Any] = list(self.core.embed_tokens)
        cfg = causal_lm.config
        first = self.layers[0]
        heads = first.self_attn.num_heads
        self.info = DecoderInfo(
            hidden=cfg.hidden_size,
            heads=heads,
            head_dim=cfg.hidden_size // heads,
            layers=len(self.layers),
            num_codebooks=cfg.num_codebooks,
            vocab=cfg.vocab_size,
            audio_channels=getattr(cfg, "audio_channels", 1),
            pad_token=cfg.pad_token_id,
            cross_attention=hasattr(first, "encoder_attn"),
        )
        self.scaling = self.info.head_dim**-0.5
        # per layer: fused (q|k|v) self-attention and (k|v) cross-attention weights and biases
        self.qkv: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None
        self.cross_kv_proj: list[tuple[torch.Tensor, torch.Tensor | None]] | None = None
        if fused_qkv:
            self.qkv = []
            for layer in self.layers:
                a = layer.self_attn
                self.qkv.append(fuse_linears(a, "qkv", [a.q_proj, a.k_proj, a.v_proj]))
            if self.info.cross_attention:
                self.cross_kv_proj = []
                for layer in self.layers:
                    a = layer.encoder_attn
                    self.cross_kv_proj.append(fuse_linears(a, "kv", [a.k_proj, a.v_proj]))

    @property
    def fused_qkv(self) -> bool:
        return self.qkv is not None

    @property
    def dtype(self) -> torch.dtype:
        return self.layers[0].fc1.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.layers[0].fc1.weight.device

    def positions(self, length: int) -> torch.Tensor:
        """The sinusoidal position table, at least ``length`` rows, in the decoder's dtype."""
        table: torch.Tensor = self.core.embed_positions.weights
        if table.shape[0] < length:
            table = self.core.embed_positions.get_embedding(length, self.info.hidden)
        return table.to(device=self.device, dtype=self.dtype)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Sum of per-codebook embeddings: tokens (..., codebooks) -> (..., hidden), in transformers' order."""
        out = self.embed_tokens[0](tokens[..., 0])
        for cb in range(1, self.info.num_codebooks):
            out = out + self.embed_tokens[cb](tokens[..., cb])
        return out

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(rows, T, hidden) -> (rows, heads, T, head_dim)."""
        rows, t, _ = x.shape
        return x.view(rows, t, self.info.heads, self.info.head_dim).transpose(1, 2)

    def _heads(self, x: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:
        """(rows, T, parts * hidden) -> ``parts`` tensors (rows, heads, T, head_dim) (views)."""
        rows, t, _ = x.shape
        return x.view(rows, t, parts, self.info.heads, self.info.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def _qkv(self, i: int, layer: Any, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Self-attention queries, keys and values of layer ``i`` for normed inputs x (rows, T, hidden)."""
        if self.qkv is None:
            attn = layer.self_attn
            return self._split(attn.q_proj(x)), self._split(attn.k_proj(x)), self._split(attn.v_proj(x))
        weight, bias = self.qkv[i]
        return self._heads(F.linear(x, weight, bias), 3)

    def cross_kv(self, states: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention keys/values of every layer for conditioning states (rows, E, hidden)."""
        out = []
        for i, layer in enumerate(self.layers):
            if self.cross_kv_proj is not None:
                weight, bias = self.cross_kv_proj[i]
                k, v = self._heads(F.linear(states, weight, bias), 2)
                out.append((k, v))
                continue
            attn = layer.encoder_attn
            out.append((self._split(attn.k_proj(states)), self._split(attn.v_proj(states))))
        return out

    def prefill(
        self,
        hidden: torch.Tensor,
        k_cache: list[torch.Tensor],
        v_cache: list[torch.Tensor],
        rows: slice,
        cross_k: list[torch.Tensor] | None,
        cross_v: list[torch.Tensor] | None,
        cross_mask: torch.Tensor | None,
    ) -> None:
        """Run (rows, T, hidden) inputs at positions 0..T-1 and store their keys/values in the cache rows."""
        t = hidden.shape[1]
        h = hidden
        for i, layer in enumerate(self.layers):
            res = h
            x = layer.self_attn_layer_norm(h)
            attn = layer.self_attn
            q, k, v = self._qkv(i, layer, x)
            k_cache[i][rows, :, :t] = k
            v_cache[i][rows, :, :t] = v
            o = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1, scale=self.scaling)
            h = res + attn.out_proj(o.transpose(1, 2).reshape(h.shape))
            if cross_k is not None and cross_v is not None:
                h = self._cross(layer, h, cross_k[i][rows], cross_v[i][rows], cross_mask)
            h = self._ffn(layer, h)

    def _cross(
        self, layer: Any, h: torch.Tensor, ck: torch.Tensor, cv: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        attn = layer.encoder_attn
        x = layer.encoder_attn_layer_norm(h)
        q = self._split(attn.q_proj(x))
        o = F.scaled_dot_product_attention(q, ck, cv, attn_mask=mask, scale=self.scaling)
        return h + attn.out_proj(o.transpose(1, 2).reshape(h.shape))

    @staticmethod
    def _ffn(layer: Any, h: torch.Tensor) -> torch.Tensor:
        x = layer.final_layer_norm(h)
        return h + layer.fc2(layer.activation_fn(layer.fc1(x)))

    @staticmethod
    def _add_linear(res: torch.Tensor, x: torch.Tensor, linear: Any) -> torch.Tensor:
        """``res + linear(x)`` for bias-free projections as one GEMM with the residual as its C
        operand (one kernel fewer per call on the GPU)."""
        if linear.bias is not None:
            return res + linear(x)
        shape = res.shape
        out = torch.addmm(res.reshape(-1, shape[-1]), x.reshape(-1, x.shape[-1]), linear.weight.t())
        return out.view(shape)

    def step(
        self,
        hidden: torch.Tensor,
        positions: torch.Tensor,
        k_cache: list[torch.Tensor],
        v_cache: list[torch.Tensor],
        length: int,
        cross_k: list[torch.Tensor] | None,
        cross_v: list[torch.Tensor] | None,
        cross_mask: torch.Tensor | None,
        unmasked: bool = False,
    ) -> torch.Tensor:
        """One token per row: hidden (rows, 1, hidden) at cache ``positions`` (rows,) -> logits
        (rows, codebooks, vocab). The caches are the first ``rows`` rows; attention reads the first
        ``length`` cache positions and sees only those at or before each row's own position.

        ``unmasked``: the caller knows every row is at position ``length - 1``, so every one of the
        ``length`` positions is visible to every row and attention runs without a mask."""
        rows = hidden.shape[0]
        heads, head_dim = self.info.heads, self.info.head_dim
        where = positions.view(rows, 1, 1, 1).expand(rows, heads, 1, head_dim)
        visible: torch.Tensor | None = None
        if not unmasked:
            keys = torch.arange(length, device=positions.device)
            visible = (keys[None, :] <= positions[:, None]).view(rows, 1, 1, length)
        h = hidden
        for i, layer in enumerate(self.layers):
            res = h
            x = layer.self_attn_layer_norm(h)
            attn = layer.self_attn
            q, k, v = self._qkv(i, layer, x)
            k_all = k_cache[i][:rows]
            v_all = v_cache[i][:rows]
            k_all.scatter_(2, where, k)
            v_all.scatter_(2, where, v)
            o = F.scaled_dot_product_attention(
                q, k_all[:, :, :length], v_all[:, :, :length], attn_mask=visible, scale=self.scaling
            )
            h = self._add_linear(res, o.transpose(1, 2).reshape(h.shape), attn.out_proj)
            if cross_k is not None and cross_v is not None:
                cross = layer.encoder_attn
                x = layer.encoder_attn_layer_norm(h)
                q = self._split(cross.q_proj(x))
                o = F.scaled_dot_product_attention(
                    q, cross_k[i][:rows], cross_v[i][:rows], attn_mask=cross_mask, scale=self.scaling
                )
                h = self._add_linear(h, o.transpose(1, 2).reshape(h.shape), cross.out_proj)
            x = layer.final_layer_norm(h)
            h = self._add_linear(h, layer.activation_fn(layer.fc1(x)), layer.fc2)
        h = self.core.layer_norm(h)[:, 0]
        return torch.stack([head(h) for head in self.lm_heads], dim=1)
