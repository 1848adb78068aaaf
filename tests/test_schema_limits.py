"""The gateway's HTTP schema is never looser than the services it fronts.

Names drawn from the OpenAPI patterns pass vcs's own checks, and any text the
gateway's ref check accepts, vcs accepts (the gateway's alphabet is narrower
than git's); values the services refuse are refused by the schema; the numeric
limits of a generation request match the generator's validation at both edges.
"""

from __future__ import annotations

import re
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from beatflow.common.errors import InvalidArgument
from beatflow.gateway import names, schemas
from beatflow.gateway.app import create_app
from beatflow.gateway.config import GatewaySettings
from beatflow.generator.decoders import Sampling
from beatflow.generator.request import GenerationSpec, Limits, validate
from beatflow.vcs import names as vcs_names

REF_CHARS = st.text(alphabet="ab.-_/@{}lock0123456789f", max_size=12)


def _vcs_accepts(check, value: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        check(value)
    except InvalidArgument:
        return False
    return True


@settings(max_examples=300, database=None, derandomize=True)
@given(st.from_regex(names.REF_PATTERN, fullmatch=True))
def test_ref_names_from_the_schema_pass_vcs(name: str) -> None:
    assert _vcs_accepts(vcs_names.check_ref_name, name), name


@settings(max_examples=500, database=None, derandomize=True)
@given(REF_CHARS)
def test_any_ref_name_the_gateway_accepts_vcs_accepts(name: str) -> None:
    gateway_ok = bool(re.match(names.REF_PATTERN, name))
    if gateway_ok:
        assert _vcs_accepts(vcs_names.check_ref_name, name), name


@settings(max_examples=200, database=None, derandomize=True)
@given(
    st.from_regex(names.REPO_PATTERN, fullmatch=True),
    st.from_regex(names.STEM_PATTERN, fullmatch=True),
    st.from_regex(names.USERNAME_PATTERN, fullmatch=True),
)
def test_repo_stem_and_user_names_from_the_schema_pass_vcs(repo: str, stem: str, user: str) -> None:
    assert _vcs_accepts(vcs_names.check_repo_name, repo), repo
    assert _vcs_accepts(vcs_names.check_stem_name, stem), stem
    assert _vcs_accepts(vcs_names.check_username, user), user


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (schemas.Credentials, "username", "a" * 40),  # vcs allows 39
        (schemas.BranchCreate, "name", "release."),
        (schemas.BranchCreate, "name", "a..b"),
        (schemas.BranchCreate, "name", "x.lock"),
        (schemas.BranchCreate, "name", "f" * 64),
        (schemas.RepositoryCreate, "name", "project.git"),
        (schemas.RepositoryCreate, "description", "d" * 2001),
        (schemas.StemIn, "name", "lead "),
        (schemas.GenerateCreate, "top_k", 2049),
        (schemas.GenerateCreate, "temperature", 0.001),
        (schemas.GenerateCreate, "duration", 0.05),
        (schemas.GenerateCreate, "prompt", "   "),
        (schemas.SeparateCreate, "segment_s", 31.0),
        (schemas.RevertCreate, "expected_head", "a"),
    ],
)
def test_values_the_services_refuse_are_refused_by_the_schema(model, field: str, value: object) -> None:  # type: ignore[no-untyped-def]
    base = {
        schemas.Credentials: {"username": "ada", "password": "correct horse"},
        schemas.BranchCreate: {"name": "main"},
        schemas.RepositoryCreate: {"name": "song"},
        schemas.StemIn: {"name": "lead", "blob_key": "a" * 64},
        schemas.GenerateCreate: {"prompt": "drums"},
        schemas.SeparateCreate: {"audio_blob": "a" * 64},
        schemas.RevertCreate: {"commit_id": "a" * 64},
    }[model]
    model(**base)
    with pytest.raises(ValidationError):
        model(**{**base, field: value})


def test_generation_limits_match_the_generator_at_both_edges() -> None:
    body = schemas.GenerateCreate.model_json_schema()["properties"]
    limits = Limits()

    def bound(name: str, key: str) -> float:
        prop = body[name]
        for option in prop.get("anyOf", [prop]):
            if key in option:
                return float(option[key])
        raise KeyError((name, key))

    spec = GenerationSpec(
        prompt="x",
        duration_s=bound("duration", "minimum"),
        sampling=Sampling(top_k=int(bound("top_k", "maximum")), temperature=bound("temperature", "minimum")),
    )
    validate(spec, limits)  # the schema's edges are accepted
    for bad in (
        GenerationSpec(prompt="x", sampling=Sampling(top_k=int(bound("top_k", "maximum")) + 1)),
        GenerationSpec(prompt="x", duration_s=bound("duration", "maximum") + 1),
    ):
        with pytest.raises(InvalidArgument):
            validate(bad, limits)


def test_every_api_operation_documents_its_error_answers() -> None:
    schema = create_app(GatewaySettings(token_secret=secrets.token_hex(32))).openapi()
    for path, item in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in item.items():
            documented = set(op["responses"])
            assert {"400", "404", "429", "503"} <= documented, (method, path, documented)
            if op.get("security"):
                assert "401" in documented, (method, path)
            if "requestBody" in op:
                assert {"413", "422"} <= documented, (method, path)
    assert "ErrorOut" in schema["components"]["schemas"]
