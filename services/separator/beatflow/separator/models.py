"""Demucs model loading: pretrained names, a local model directory, and built-in presets.

A model spec is one of:

* a pretrained name (``htdemucs``, ``htdemucs_ft``, ``htdemucs_6s``, or any other
  name the demucs repository layout knows), loaded from ``model_dir`` when it is
  set (the folder layout ``demucs --repo`` uses: ``<sig>.th`` / ``<sig>-<hash>.th``
  files plus ``<name>.yaml`` bags) or else from the usual remote (HuggingFace hub,
  then the legacy download site);
* ``tiny``: a small random-weight HTDemucs (4 sources at 44.1 kHz, fixed seed) that
  runs fast on a CPU, for tests and offline demos;
* ``htdemucs-arch`` / ``htdemucs_6s-arch``: the real HTDemucs shapes with random
  weights, for benchmarks on machines without the weights.

Only ``demucs.pretrained``, ``demucs.apply`` and ``demucs.htdemucs`` are imported:
other demucs modules pull in audio back ends this service does not use.
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from demucs.apply import BagOfModels
from demucs.htdemucs import HTDemucs

from beatflow.common.errors import FailedPrecondition, InvalidArgument, Unavailable

log = logging.getLogger(__name__)

FOUR_STEMS = ["drums", "bass", "other", "vocals"]
SIX_STEMS = ["drums", "bass", "other", "vocals", "guitar", "piano"]

# Pretrained models this service documents (others in a local model dir also load).
PRETRAINED = {
    "htdemucs": FOUR_STEMS,
    "htdemucs_ft": FOUR_STEMS,
    "htdemucs_6s": SIX_STEMS,
}
TINY = "tiny"
ARCH_PRESETS = {"htdemucs-arch": FOUR_STEMS, "htdemucs_6s-arch": SIX_STEMS}
PRESETS = {TINY: FOUR_STEMS, **ARCH_PRESETS}
TINY_SEED = 20240601


@dataclass
class LoadedModel:
    """A model ready for inference, with the facts the separation loop needs."""

    name: str
    model: torch.nn.Module  # HTDemucs / HDemucs or a BagOfModels of them
    device: torch.device

    @property
    def sources(self) -> list[str]:
        return list(self.model.sources)  # type: ignore[arg-type]

    @property
    def samplerate(self) -> int:
        return int(self.model.samplerate)  # type: ignore[arg-type]

    @property
    def audio_channels(self) -> int:
        return int(self.model.audio_channels)  # type: ignore[arg-type]

    @property
    def max_segment_s(self) -> float:
        """Longest segment the model accepts (HTDemucs cannot go past its training length)."""
        models = list(self.model.models) if isinstance(self.model, BagOfModels) else [self.model]
        limit = float("inf")
        for sub in models:
            if isinstance(sub, HTDemucs):
                limit = min(limit, float(sub.segment))
        return limit if limit != float("inf") else 30.0

    @property
    def default_segment_s(self) -> float:
        models = list(self.model.models) if isinstance(self.model, BagOfModels) else [self.model]
        return min(float(getattr(sub, "segment", 7.8)) for sub in models)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build_tiny() -> HTDemucs:
    """The ``tiny`` preset: ~0.36 M random parameters, deterministic for a given torch version."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(TINY_SEED)
        model = HTDemucs(
            FOUR_STEMS,
            audio_channels=2,
            samplerate=44100,
            segment=4,
            channels=8,
            depth=4,
            nfft=4096,
            t_layers=1,
            t_heads=2,
            dconv_comp=8,
        )
    return model.eval()


def build_arch(sources: list[str], seed: int = 0) -> HTDemucs:
    """HTDemucs with the shapes of the released ``htdemucs`` models and random weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HTDemucs(
            sources,
            audio_channels=2,
            samplerate=44100,
            segment=Fraction(39, 5),
            channels=48,
            depth=4,
            nfft=4096,
            bottom_channels=512,
            t_layers=5,
            t_heads=8,
            dconv_mode=1,
            dconv_comp=8,
        )
    return model.eval()


def known_model(name: str, model_dir: Path | None) -> bool:
    """Whether ``name`` is worth trying to load (checked at submit time)."""
    if name in PRESETS or name in PRETRAINED:
        return True
    if model_dir is not None and model_dir.is_dir():
        return any(p.stem == name or p.stem.split("-", 1)[0] == name for p in model_dir.iterdir())
    return False


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


REMOTE_HOSTS = ("huggingface.co", "dl.fbaipublicfiles.com")


def remote_reachable(timeout_s: float = 3.0) -> bool:
    """Whether any model download host answers a TCP connect (the hub client would retry for a minute)."""
    import socket

    for host in REMOTE_HOSTS:
        try:
            with socket.create_connection((host, 443), timeout=timeout_s):
                return True
        except OSError:
            continue
    return False


def _unavailable(name: str, where: str, why: str) -> Unavailable:
    return Unavailable(
        f"could not load demucs model {name!r} from {where} ({why}). "
        "Put the weights in BEATFLOW_SEPARATOR_MODEL_DIR (the layout of `demucs --repo`), "
        "or use the built-in random-weight model 'tiny' (BEATFLOW_SEPARATOR_MODEL=tiny, "
        "or BEATFLOW_SEPARATOR_FALLBACK_TINY=true to fall back to it)"
    )


def _load_pretrained(name: str, model_dir: Path | None) -> torch.nn.Module:
    from demucs import pretrained

    try:
        if model_dir is not None:
            if not model_dir.is_dir():
                raise FailedPrecondition(f"model directory {model_dir} does not exist")
            return pretrained.get_model(name, repo=model_dir)
        if not remote_reachable():
            raise _unavailable(name, "the demucs model hub", "the network cannot reach " + " or ".join(REMOTE_HOSTS))
        return pretrained.get_model(name)
    except (FailedPrecondition, InvalidArgument, Unavailable):
        raise
    except (Exception, SystemExit) as exc:  # network errors, missing files, bad checksums; demucs' fatal() exits
        where = f"model directory {model_dir}" if model_dir is not None else "the demucs model hub"
        raise _unavailable(name, where, f"{type(exc).__name__}: {exc}") from None


def load_model(name: str, *, model_dir: Path | None = None, device: str = "auto") -> LoadedModel:
    """Load ``name`` (pretrained or preset) onto ``device`` in eval mode."""
    dev = resolve_device(device)
    module: torch.nn.Module
    if name == TINY:
        module = build_tiny()
    elif name in ARCH_PRESETS:
        module = build_arch(ARCH_PRESETS[name])
    else:
        module = _load_pretrained(name, model_dir)
    module.to(dev)
    module.eval()
    loaded = LoadedModel(name=name, model=module, device=dev)
    log.info(
        "loaded model %s: %d sources %s at %d Hz, %.1f M parameters on %s",
        name,
        len(loaded.sources),
        loaded.sources,
        loaded.samplerate,
        loaded.num_parameters / 1e6,
        dev,
    )
    return loaded


class ModelRegistry:
    """Loads each model once and keeps it; the default model is loaded before SERVING."""

    def __init__(self, *, default: str, model_dir: Path | None, device: str, fallback_tiny: bool) -> None:
        self.default = default
        self.model_dir = model_dir
        self.device = device
        self.fallback_tiny = fallback_tiny
        self._models: dict[str, LoadedModel] = {}
        self._aliases: dict[str, str] = {}
        self._lock = threading.Lock()

    def resolve_name(self, name: str) -> str:
        name = name or self.default
        return self._aliases.get(name, name)

    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._models)

    def get(self, name: str = "") -> LoadedModel:
        """The loaded model for ``name`` (empty: the default), loading it on first use."""
        key = self.resolve_name(name)
        with self._lock:
            if key in self._models:
                return self._models[key]
            try:
                model = load_model(key, model_dir=self.model_dir, device=self.device)
            except Unavailable as exc:
                if not (self.fallback_tiny and key == self.default):
                    raise
                log.warning("%s; falling back to the random-weight 'tiny' model", exc.message)
                model = self._models.get(TINY) or load_model(TINY, device=self.device)
                self._models[TINY] = model
                self._aliases[key] = TINY
            self._models[key] = model
            return model

    def info(self) -> dict[str, Any]:
        return {
            name: {"sources": m.sources, "samplerate": m.samplerate, "device": str(m.device), "model": m.name}
            for name, m in self._models.items()
        }


def save_to_model_dir(model: torch.nn.Module, model_dir: Path, signature: str, *, bag: str | None = None) -> Path:
    """Write ``model`` into a demucs model directory (``<sig>-<sha8>.th``, plus ``<bag>.yaml`` naming it).

    The same layout the released weights use, so a directory made here (say from a
    fine-tuned model) loads through :func:`load_model` like the downloaded ones.
    """
    import yaml
    from demucs.states import get_state, save_with_checksum

    args, kwargs = model._init_args_kwargs  # type: ignore[misc]  # recorded by demucs' capture_init
    state = get_state(model, None)
    package = {"klass": type(model), "args": args, "kwargs": kwargs, "state": state, "training_args": {}}
    model_dir.mkdir(parents=True, exist_ok=True)
    save_with_checksum(package, model_dir / f"{signature}.th")
    if bag is not None:
        (model_dir / f"{bag}.yaml").write_text(yaml.safe_dump({"models": [signature]}))
    return model_dir
