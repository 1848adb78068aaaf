"""Schemathesis fuzzes every operation of the gateway's OpenAPI against the running stack.

Each operation gets negative cases (invalid by the schema) and positive
cases: where the path names a repository, commit, task or audio file, aimed
at real objects of the fuzzing user, otherwise with generated values. Every
response passes all of schemathesis' checks: no 5xx, a documented status code
("undocumented status"), the documented schema, content type and headers, a
valid request never refused as invalid (400/413/415/422: "valid request
rejected"). Not checked: that every invalid request is refused, since the
gateway (as FastAPI does) ignores query parameters it does not know. Generation is deterministic
(derandomized) and bounded; tasks the fuzzer starts are cancelled at once so
they do not load the workers.

The always-on test runs two cases per operation and variant (each one gets some); the ``slow`` one
(``make test-slow``, excluded from ``make test``) runs at least 5,000.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from tests.stack_fixtures import Stack, tone_wav

MAX_EXAMPLES = 2  # per operation and variant: every operation still gets negative and positive cases
NIGHTLY_EXAMPLES = 70  # x 2 variants x ~40 operations: over 5,000 cases
EXAMPLES_OVERRIDE = os.environ.get("BEATFLOW_FUZZ_EXAMPLES")  # a shorter or longer nightly run
OUTPUT = Path(__file__).parent / "output"
# Aimed at real objects, these would destroy what later cases aim at.
NOT_AIMED = {"DELETE /api/repositories/{repo_id}"}
# Signing out revokes the fuzzing user's token: fuzzed last.
LAST = {"POST /api/auth/signout"}
# What no schema can state: an upload must be decodable audio (400 unreadable header, 415 not audio).
BEYOND_SCHEMA = {"POST /api/audio/upload": {400, 415}}
# Rules across fields that the schema cannot state (model validators): a commit needs something to
# commit (stems, from_task, mixdown_blob or inherit_stems); a comment names exactly one of commit,
# merge request or parent; webhook events need a webhook URL. A 422 whose every error is about the
# body as a whole is allowed there.
CROSS_FIELD = {
    "POST /api/vcs/commit/{repo_id}",
    "POST /api/vcs/comments/{repo_id}",
    "POST /api/ai/generate",
    "POST /api/ai/hum-to-beat",
    "POST /api/ai/separate-stems",
    "POST /api/ai/analyze-audio",
}


def _cross_field_422(response: Any) -> bool:
    if response.status_code != 422:
        return False
    try:
        errors = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(errors) and all(e.get("loc") == ["body"] and e.get("type") == "value_error" for e in errors)


# Opaque values only the server issues (any other is rightly refused): not invented in positive cases.
SERVER_ISSUED_QUERY = {"page_token"}


@pytest.fixture(scope="module")
def fuzz_user(stack: Stack) -> tuple[str, dict[str, str]]:
    _uid, token = stack.signup("fuzz")
    blob = stack.upload(token, tone_wav(1.0, freq=440))["blob_key"]
    with stack.client(token) as http:
        repo = http.post("/api/repositories/create", json={"name": "fuzzed"}).json()["id"]
        r = http.post(
            f"/api/vcs/commit/{repo}", json={"message": "seed", "stems": [{"name": "lead", "blob_key": blob}]}
        )
        assert r.status_code == 201, r.text
        commit = r.json()["id"]
        r = http.post("/api/ai/analyze-audio", json={"audio_blob": blob, "background": True})
        assert r.status_code == 200, r.text
        task = r.json()["task"]["task_id"]
    stack.finish(token, task)
    return token, {"repo_id": repo, "commit_id": commit, "task_id": task, "filename": f"{blob}.wav"}


def test_openapi_fuzz_finds_no_server_errors_or_schema_violations(
    stack: Stack, fuzz_user: tuple[str, dict[str, str]]
) -> None:
    fuzz(stack, fuzz_user, MAX_EXAMPLES, "fuzz_summary.json")


@pytest.mark.slow
def test_openapi_fuzz_nightly_over_5000_cases(stack: Stack, fuzz_user: tuple[str, dict[str, str]]) -> None:
    examples = int(EXAMPLES_OVERRIDE) if EXAMPLES_OVERRIDE else NIGHTLY_EXAMPLES
    total = fuzz(stack, fuzz_user, examples, "fuzz_nightly_summary.json")
    assert EXAMPLES_OVERRIDE or total >= 5000


def fuzz(stack: Stack, fuzz_user: tuple[str, dict[str, str]], max_examples: int, summary: str) -> int:
    """Every operation, negative and positive, under all of schemathesis' checks; returns the case count."""
    token, known_ids = fuzz_user
    auth = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(stack.base_url + "/openapi.json")
    # NUL in any text is refused by one validator for every body (no backend stores it), a rule the
    # schema does not state per field; it has its own test (gateway tests/test_app_offline.py)
    schema.config.generation.update(allow_x00=False)
    cases: Counter[str] = Counter()
    per_operation: Counter[tuple[str, str]] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    started: list[str] = []
    beyond_schema: Counter[str] = Counter()

    def run_cases(op: Any, variant: str, mode: GenerationMode, path_parameters: dict[str, Any] | None) -> None:
        @given(case=op.as_strategy(generation_mode=mode, path_parameters=path_parameters))
        @settings(
            max_examples=max_examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            if mode == GenerationMode.POSITIVE and case.query:
                for name in SERVER_ISSUED_QUERY:
                    case.query.pop(name, None)
            response = case.call(base_url=stack.base_url, headers=auth, allow_redirects=False, timeout=60)
            cases[variant] += 1
            per_operation[(op.label, variant)] += 1
            statuses[response.status_code] += 1
            if response.status_code == 202:
                task_id = response.json().get("task_id")
                if task_id:
                    started.append(task_id)
                    with stack.client(token) as http:
                        http.post(f"/api/ai/tasks/{task_id}/cancel")
            excluded = [negative_data_rejection]  # unknown query parameters are ignored, not refused
            if mode == GenerationMode.POSITIVE and (
                response.status_code in BEYOND_SCHEMA.get(op.label, ())
                or (op.label in CROSS_FIELD and _cross_field_422(response))
            ):
                beyond_schema[op.label] += 1
                excluded.append(positive_data_acceptance)
            case.validate_response(response, excluded_checks=excluded)  # every other built-in check

        try:
            run()
        except BaseExceptionGroup as exc:  # schemathesis failures: collect them all, not just the first
            failures.append(f"{op.label} [{variant}]: {exc}")

    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    operations.sort(key=lambda op: op.label in LAST)
    assert len(operations) >= 30, [op.label for op in operations]
    expected: list[tuple[str, str]] = []
    for op in operations:
        names = re.findall(r"{(\w+)}", op.path)
        aimed = {n: known_ids[n] for n in names if n in known_ids}
        variants: list[tuple[str, GenerationMode, dict[str, Any] | None]] = [
            ("negative", GenerationMode.NEGATIVE, None)
        ]
        if aimed and len(aimed) == len(names) and op.label not in NOT_AIMED:
            variants.append(("aimed", GenerationMode.POSITIVE, aimed))
        else:
            variants.append(("positive", GenerationMode.POSITIVE, None))
        for variant, mode, path_parameters in variants:
            expected.append((op.label, variant))
            run_cases(op, variant, mode, path_parameters)

    total = sum(cases.values())
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / summary).write_text(
        json.dumps(
            {
                "operations": len(operations),
                "cases": total,
                "by_variant": dict(cases),
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
                "tasks_started_and_cancelled": len(started),
                "failures": failures,
            },
            indent=2,
        )
    )
    print(f"schemathesis: {total} cases over {len(operations)} operations, statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n".join(failures[:20])
    assert total >= 2 * len(operations)
    unfuzzed = [f"{label} [{variant}]" for label, variant in expected if not per_operation[(label, variant)]]
    assert not unfuzzed, f"operations that got no case: {unfuzzed}"
    assert not any(status >= 500 for status in statuses)
    return total
