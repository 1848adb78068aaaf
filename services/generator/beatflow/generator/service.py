"""The generator's use cases: submit a generation job, describe the served model.

Protobuf stays in the servicer; generation itself runs in the worker
(``worker.py``), which takes the jobs submitted here from the queue.
Cancelling and watching jobs are the shared ``beatflow.v1.Jobs`` service.
"""

from __future__ import annotations

import asyncio
from typing import Any

from beatflow.common.blobstore import BlobStore
from beatflow.common.errors import FailedPrecondition, Unavailable
from beatflow.common.jobs import JobQueue, JobRecord
from beatflow.common.jobs.queue import request_fingerprint
from beatflow.generator.config import GeneratorSettings
from beatflow.generator.decoder_choice import choose_backend
from beatflow.generator.model_loading import ModelSlot, load_slots, select_slot
from beatflow.generator.models import LoadedModel
from beatflow.generator.request import GenerationSpec, Limits, validate
from beatflow.generator.upload_checks import check_upload
from beatflow.generator.worker import KIND


def limits_from(settings: GeneratorSettings) -> Limits:
    window = settings.generator_max_window_s
    return Limits(
        max_duration_s=settings.generator_max_duration_s,
        default_duration_s=settings.generator_default_duration_s,
        max_prompt_chars=settings.generator_max_prompt_chars,
        max_variations=settings.generator_max_variations,
        max_upload_bytes=settings.generator_max_upload_bytes,
        max_upload_s=settings.generator_max_upload_s,
        # the prompt and at least a second of new audio must fit in the first window
        max_prompt_audio_s=min(settings.generator_max_prompt_audio_s, window - 1.0),
        min_melody_s=settings.generator_min_melody_s,
        silence_db=settings.generator_silence_db,
    )


class GeneratorService:
    """Submit-time checks and queueing, and the model description; UNAVAILABLE until the models load."""

    def __init__(self, settings: GeneratorSettings, queue: JobQueue, store: BlobStore) -> None:
        self.settings = settings
        self.queue = queue
        self.store = store
        self.limits = limits_from(settings)
        self.slots: dict[str, ModelSlot] = {}

    @property
    def ready(self) -> bool:
        return bool(self.slots)

    async def load_models(self, model: LoadedModel | None = None) -> None:
        """Load the model(s) once (``model``: serve this main model instead of the configured one)."""
        if not self.ready:
            self.slots = await asyncio.to_thread(load_slots, self.settings, model)

    def _require_ready(self) -> None:
        if not self.ready:
            raise Unavailable("the generator is still loading its model; retry shortly")

    async def submit(
        self, spec: GenerationSpec, *, idempotency_key: str | None = None, options: dict[str, Any] | None = None
    ) -> JobRecord:
        """Validate (limits, uploads, model support) and queue a generation job.

        ``options``: deadline and webhook (``JobQueue.submit`` keywords). The job's
        size for ETAs is the audio it produces: duration times variations.
        """
        self._require_ready()
        asked = request_fingerprint(spec.to_dict())  # before validate draws a seed: the client's request
        spec = validate(spec, self.limits)
        if spec.melody_blob:
            select_slot(self.slots, spec)
            await check_upload(self.store, spec.melody_blob, "melody", self.limits)
        if spec.prompt_audio_blob:
            slot = select_slot(self.slots, spec)
            if slot.lm.audio_channels not in (1, 2):
                raise FailedPrecondition("the model cannot be prompted with audio")
            await check_upload(self.store, spec.prompt_audio_blob, "audio prompt", self.limits)
        return await self.queue.submit(
            KIND,
            spec.to_dict(),
            owner=spec.owner,
            idempotency_key=idempotency_key,
            size_s=spec.duration_s * spec.num_variations,
            fingerprint=asked,
            **(options or {}),
        )

    def model_info(self) -> dict[str, Any]:
        self._require_ready()
        main = self.slots["text"]
        melody = self.slots.get("melody")
        return {
            "spec": main.lm.spec,
            "device": str(main.lm.device),
            "dtype": str(main.lm.dtype).removeprefix("torch."),
            "sample_rate": main.lm.sample_rate,
            "channels": main.lm.audio_channels,
            "frame_rate": main.lm.frame_rate,
            "supports_melody": melody is not None,
            "max_duration_s": self.limits.max_duration_s,
            "max_batch": self.settings.generator_max_batch,
            "melody_spec": melody.lm.spec if melody is not None else "",
            "backend": main.decoder.name,
            "backend_reason": choose_backend(self.settings.generator_backend, main.lm.device)[1],
            "window_s": self.settings.generator_max_window_s,
            "max_variations": self.limits.max_variations,
            "max_prompt_chars": self.limits.max_prompt_chars,
            "num_codebooks": main.lm.num_codebooks,
            "max_wait_ms": self.settings.generator_max_wait_ms,
        }
