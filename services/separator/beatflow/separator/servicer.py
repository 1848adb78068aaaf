"""``beatflow.v1.Separator``: protobuf in and out, nothing else."""

from __future__ import annotations

import grpc

from beatflow.common.errors import InvalidArgument
from beatflow.common.jobs.servicer import job_options_from_proto
from beatflow.separator.separation import SeparationOptions
from beatflow.separator.service import SeparatorService
from beatflow.v1 import generator_pb2, jobs_pb2, separator_pb2, separator_pb2_grpc

FORMATS = {
    generator_pb2.AUDIO_FORMAT_UNSPECIFIED: "wav",
    generator_pb2.AUDIO_FORMAT_WAV: "wav",
    generator_pb2.AUDIO_FORMAT_FLAC: "flac",
}


def options_from_proto(request: separator_pb2.SeparateRequest) -> SeparationOptions:
    if request.format not in FORMATS:
        raise InvalidArgument("stems can be written as WAV or FLAC only")
    return SeparationOptions(
        model=request.model,
        two_stems=request.two_stems,
        shifts=request.shifts,
        overlap=request.overlap if request.HasField("overlap") else 0.25,
        segment_s=request.segment_s if request.HasField("segment_s") else None,
        format=FORMATS[request.format],
        residual_stem=request.residual_stem,
        seed=request.seed if request.HasField("seed") else 0,
    )


class SeparatorServicer(separator_pb2_grpc.SeparatorServicer):
    def __init__(self, service: SeparatorService) -> None:
        self.service = service

    async def SubmitSeparation(
        self, request: separator_pb2.SeparateRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        record = await self.service.submit_separation(
            request.audio_blob,
            options_from_proto(request),
            owner=request.owner,
            idempotency_key=request.idempotency_key,
            options=job_options_from_proto(request.job_options),
        )
        return record.to_proto()

    async def SubmitAnalysis(
        self, request: separator_pb2.AnalyzeRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        record = await self.service.submit_analysis(
            request.audio_blob,
            owner=request.owner,
            idempotency_key=request.idempotency_key,
            options=job_options_from_proto(request.job_options),
        )
        return record.to_proto()

    async def AnalyzeAudio(
        self, request: separator_pb2.AnalyzeRequest, context: grpc.aio.ServicerContext
    ) -> separator_pb2.Analysis:
        result = await self.service.analyze_inline(request.audio_blob)
        return separator_pb2.Analysis(**result.to_dict())

    async def SubmitAudioDiff(
        self, request: separator_pb2.AudioDiffRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.Job:
        record = await self.service.submit_audio_diff(
            [(p.name, p.from_blob, p.to_blob) for p in request.stems],
            owner=request.owner,
            idempotency_key=request.idempotency_key,
        )
        return record.to_proto()
