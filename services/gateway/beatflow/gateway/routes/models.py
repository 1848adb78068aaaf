"""What the generator runs, so clients can tell real music from a demo model."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from beatflow.gateway.deps import State, User
from beatflow.v1 import generator_pb2

router = APIRouter(prefix="/api/ai", tags=["ai"])

# The generator's built-in presets (tiny*, *-arch) have the right shapes and random weights.
_RANDOM_WEIGHT_SUFFIX = "-arch"
_RANDOM_WEIGHT_PREFIX = "tiny"
HOW_TO_CONNECT = (
    "Set BEATFLOW_GENERATOR_MODEL to a MusicGen checkpoint (a hub id such as facebook/musicgen-small, "
    "or a local directory holding one) and restart the generator."
)


def has_random_weights(spec: str) -> bool:
    return spec.startswith(_RANDOM_WEIGHT_PREFIX) or spec.endswith(_RANDOM_WEIGHT_SUFFIX)


class ModelOut(BaseModel):
    spec: str = Field(description="Model spec: hub id, local directory or built-in preset")
    melody_spec: str = Field(description="Model used for hum-to-beat ('' when unavailable)")
    device: str
    sample_rate: int
    channels: int
    max_duration_s: float
    max_variations: int
    supports_melody: bool
    random_weights: bool = Field(description="A built-in preset with random weights: its audio is noise")
    notice: str = Field(description="What a user should know about the model, in words ('' when nothing)")
    how_to_connect: str = Field(description="How to serve a real checkpoint ('' when one is served)")


@router.get("/model", summary="The generation model in service (and whether it is a random-weight demo)")
async def model_info(state: State, user: User) -> ModelOut:
    info = await state.backends.generator.GetModelInfo(generator_pb2.ModelInfoRequest(), timeout=state.timeout)
    random_weights = has_random_weights(info.spec)
    notice = ""
    if random_weights:
        notice = (
            f"Demo model with random weights ({info.spec}): generated audio is noise. "
            "Connect a real MusicGen checkpoint to hear music."
        )
    return ModelOut(
        spec=info.spec,
        melody_spec=info.melody_spec,
        device=info.device,
        sample_rate=info.sample_rate,
        channels=info.channels,
        max_duration_s=info.max_duration_s,
        max_variations=info.max_variations or 1,
        supports_melody=info.supports_melody or bool(info.melody_spec),
        random_weights=random_weights,
        notice=notice,
        how_to_connect=HOW_TO_CONNECT if random_weights else "",
    )
