"""Edge cases found in review: forged page tokens, self merges, empty repositories."""

from __future__ import annotations

import pytest

from beatflow.common.errors import InvalidArgument
from beatflow.vcs.model import Visibility
from beatflow.vcs.tokens import encode_token


async def test_forged_first_parent_token_cannot_read_another_repository(world) -> None:
    secret = await world.commit("secret", drums="secret-drums")  # alice's private repo
    public = await world.vcs.create_repository(world.bob.id, "open", "", Visibility.PUBLIC)
    mine = await world.commit("mine", actor=world.bob.id, repo=public.id, drums="bob-drums")
    forged = encode_token({"h": mine.id, "fp": True, "n": secret.id})
    with pytest.raises(InvalidArgument):
        page, _ = await world.vcs.log(world.bob.id, public.id, first_parent=True, page_token=forged)
        assert secret.id not in [c.id for c in page]
