"""``beatflow.v1.Generator``: protobuf in and out, nothing else (the use cases: ``service.py``)."""

from __future__ import annotations

import grpc

from beatflow.common.jobs.servicer import job_options_from_proto
from beatflow.generator.decoders import Sampling
from beatflow.generator.prompts import Hints
from beatflow.generator.request import GenerationSpec
from beatflow.generator.service import GeneratorService
from beatflow.v1 import generator_pb2, generator_pb2_grpc, jobs_pb2

_FORMATS = {
    generator_pb2.AUDIO_FORMAT_UNSPECIFIED: "wav",
    generator_pb2.AUDIO_FORMAT_WAV: "wav",
    generator_pb2.AUDIO_FORMAT_FLAC: "flac",
    generator_pb2.AUDIO_FORMAT_MP3: "mp3",
}


def spec_from_proto(req: generator_pb2.GenerateRequest) -> GenerationSpec:
    s = req.sampling
    return GenerationSpec(
        prompt=req.prompt,
        hints=Hints(
            bpm=req.hints.bpm if req.hints.HasField("bpm") else None,
            mood=req.hints.mood,
            genre=req.hints.genre,
            key=req.hints.key,
            instruments=tuple(req.hints.instruments),
        ),
        duration_s=req.duration_s,
        seed=req.seed if req.HasField("seed") else None,
        sampling=Sampling(
            top_k=s.top_k if s.HasField("top_k") else 250,
            top_p=s.top_p if s.HasField("top_p") else 0.0,
            temperature=s.temperature if s.HasField("temperature") else 1.0,
            greedy=s.greedy,
        ),
        guidance_scale=s.guidance_scale if s.HasField("guidance_scale") else 3.0,
        num_variations=req.num_variations or 1,
        format=_FORMATS.get(req.format, f"unknown format {req.format}"),
        melody_blob=req.melody_blob,
        prompt_audio_blob=req.prompt_audio_blob,
        owner=req.owner,
        conform=req.conform if req.HasField("conform") else None,
        loop=req.loop,
    )


class GeneratorServicer(generator_pb2_grpc.GeneratorServicer):
    def __init__(self, service: GeneratorService) -> None:
        self.service = service

    async def SubmitGeneration(
        self, request: generator_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        record = await self.service.submit(
            spec_from_proto(request),
            idempotency_key=request.idempotency_key or None,
            options=job_options_from_proto(request.job_options),
        )
        return record.to_proto()

    async def GetModelInfo(
        self, request: generator_pb2.ModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> generator_pb2.ModelInfo:
        info = self.service.model_info()
        return generator_pb2.ModelInfo(**info)
