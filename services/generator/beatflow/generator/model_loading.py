"""Which models the generator serves and how they load.

The main model (``BEATFLOW_GENERATOR_MODEL``) serves text-to-music and
continuation; a melody model (``BEATFLOW_GENERATOR_MELODY_MODEL``: ``auto``,
``none`` or a spec) serves hum-to-beat, unless the main model has melody
conditioning itself. A model that cannot be loaded stops the service, unless
``BEATFLOW_GENERATOR_FALLBACK_TINY`` is set: then the random-weight ``tiny``
preset (``tiny-melody``) is served in its place. Each loaded model becomes a
:class:`ModelSlot` with its decoder (``BEATFLOW_GENERATOR_BACKEND``) and its
window runner (``longform.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from beatflow.common.errors import FailedPrecondition
from beatflow.generator.config import GeneratorSettings
from beatflow.generator.decoder_choice import choose_backend, make_decoder
from beatflow.generator.decoders import Decoder
from beatflow.generator.longform import WindowRunner
from beatflow.generator.models import LoadedModel, ModelLoadError, load_model
from beatflow.generator.request import GenerationSpec

log = logging.getLogger(__name__)


@dataclass
class ModelSlot:
    """A loaded model with its decoder and window runner."""

    role: str  # "text" or "melody"
    lm: LoadedModel
    decoder: Decoder
    window_runner: WindowRunner


def select_slot(slots: dict[str, ModelSlot], spec: GenerationSpec) -> ModelSlot:
    """The model that serves ``spec``: the melody model for hum-to-beat, else the main model."""
    if spec.melody_blob:
        if "melody" not in slots:
            raise FailedPrecondition(
                "hum-to-beat needs a melody model: set BEATFLOW_GENERATOR_MELODY_MODEL "
                "(e.g. facebook/musicgen-melody or tiny-melody)"
            )
        return slots["melody"]
    return slots["text"]


def load_or_fall_back(spec: str, fallback: str, settings: GeneratorSettings) -> LoadedModel:
    """Load ``spec``; when it cannot be loaded and ``generator_fallback_tiny`` is set, load ``fallback``."""
    try:
        return load_model(spec, settings.generator_device, settings.generator_dtype)
    except ModelLoadError as exc:
        if not settings.generator_fallback_tiny or spec == fallback:
            raise
        log.warning("%s -- BEATFLOW_GENERATOR_FALLBACK_TINY is set: serving the random-weight %r preset", exc, fallback)
        return load_model(fallback, settings.generator_device, settings.generator_dtype)


def melody_spec_for(setting: str, main: LoadedModel) -> tuple[str, bool]:
    """The melody model to load (``""``: none) and whether failing to load it is fatal."""
    value = setting.strip()
    if value.lower() in ("", "none"):
        return "", False
    if value.lower() != "auto":
        return value, True
    if main.spec.startswith("tiny"):
        return "tiny-melody", False
    if main.spec.endswith("-arch"):
        return "melody-arch", False
    return "facebook/musicgen-melody", False


def load_slots(settings: GeneratorSettings, model: LoadedModel | None = None) -> dict[str, ModelSlot]:
    """Load the main model (and the melody model, if configured) with their decoders.

    ``model``: an already loaded main model to serve instead of loading ``generator_model``.
    """
    if settings.generator_torch_threads > 0:
        torch.set_num_threads(settings.generator_torch_threads)

    def slot(role: str, lm: LoadedModel) -> ModelSlot:
        decoder = make_decoder(settings.generator_backend, lm, window_s=settings.generator_max_window_s)
        window_runner = WindowRunner(lm, decoder, settings.generator_max_window_s, settings.generator_context_s)
        return ModelSlot(role, lm, decoder, window_runner)

    main = model if model is not None else load_or_fall_back(settings.generator_model, "tiny", settings)
    slots = {"text": slot("text", main)}
    melody_spec, required = melody_spec_for(settings.generator_melody_model, main)
    if main.is_melody:
        slots["melody"] = slots["text"]
    elif melody_spec:
        try:
            melody = load_or_fall_back(melody_spec, "tiny-melody", settings)
        except ModelLoadError as exc:
            if required:
                raise
            log.warning("%s -- serving without hum-to-beat (set BEATFLOW_GENERATOR_MELODY_MODEL)", exc)
        else:
            if not melody.is_melody:
                raise ModelLoadError(f"melody model {melody.spec!r} has no melody conditioning")
            slots["melody"] = slot("melody", melody)
    for role, s in slots.items():
        _, why = choose_backend(settings.generator_backend, s.lm.device)
        log.info(
            "%s model %s loaded on %s (%s), backend %s: %s",
            role,
            s.lm.spec,
            s.lm.device,
            s.lm.dtype,
            s.decoder.name,
            why,
        )
    return slots
