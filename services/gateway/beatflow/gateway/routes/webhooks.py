"""Webhook settings of the signed-in user: signing secret (rotatable) and dead letters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from beatflow.gateway import convert, schemas
from beatflow.gateway.deps import State, User

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

EventId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^evt_[A-Za-z0-9_\-]+$")]


@router.get("/secret", summary="The signing secret of your webhook deliveries (created on first use)")
async def get_secret(state: State, user: User) -> schemas.WebhookSecretOut:
    return schemas.WebhookSecretOut(secret=await state.backends.webhook_secret(user.user_id))


@router.post("/secret/rotate", summary="Replace the signing secret; later deliveries use the new one only")
async def rotate_secret(state: State, user: User) -> schemas.WebhookSecretOut:
    return schemas.WebhookSecretOut(secret=await state.backends.webhook_secret(user.user_id, rotate=True))


@router.get(
    "/dead-letters", summary="Deliveries that kept failing for longer than the retry window (over a day), newest first"
)
async def dead_letters(
    state: State, user: User, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> schemas.WebhookDeliveryList:
    reply = await state.backends.webhook_dead_letters(user.user_id, limit)
    return schemas.WebhookDeliveryList(deliveries=[convert.webhook_delivery(d) for d in reply.deliveries])


@router.post(
    "/dead-letters/{event_id}/redeliver",
    responses={404: {"description": "No such dead delivery of yours"}},
    summary="Deliver a dead-lettered event again (same event id, retries start over)",
)
async def redeliver(event_id: EventId, state: State, user: User) -> schemas.WebhookDeliveryOut:
    return convert.webhook_delivery(await state.backends.redeliver_webhook(user.user_id, event_id))
