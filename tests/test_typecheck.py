"""mypy sees across the namespace distributions: a wrong call into another module is an error.

The root pyproject.toml puts every distribution on mypy's path (``make lint``
and editors read the same settings); without that, ``beatflow.*`` imports
resolve to Any and any call passes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

ROOT = Path(__file__).resolve().parents[1]


def _mypy(tmp_path: Path, source: str) -> tuple[str, int]:
    module = tmp_path / "injected.py"
    module.write_text(textwrap.dedent(source))
    out, err, status = mypy_api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--follow-imports=silent",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(module),
        ]
    )
    return out + err, status


def test_wrong_call_into_another_distribution_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # mypy_path in pyproject.toml is relative to the repository root
    report, status = _mypy(
        tmp_path,
        """
        from beatflow.gateway import convert
        from beatflow.v1 import jobs_pb2

        good = convert.task(jobs_pb2.Job(id="j"))
        bad = convert.task(jobs_pb2.Job(id="j"), 1, 2, 3)
        state: str = convert.task_status(jobs_pb2.JOB_STATE_QUEUED)
        """,
    )
    assert status == 1, report
    assert 'Too many arguments for "task"' in report, report
    assert report.count("error:") == 1, report  # the good calls type-check
