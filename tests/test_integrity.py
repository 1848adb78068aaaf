"""One flipped byte in the S3 store: every read path of the running stack refuses the blob.

Download (whole, range, presigned redirect), inline and background analysis,
separation input, generator prompt audio and commits all refuse it; intact
chunks of a damaged large blob are still served by range; a long download is
cut short before the damaged chunk (never a clean end); uploading the original
again repairs the store. The local directory store gets the same checks in
services/common/tests/test_blobstore.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import httpx
import pytest

from beatflow.common.blobstore import CHUNK
from tests.stack_fixtures import Stack, tone_wav


def flip_byte(stack: Stack, key: str, offset: int) -> None:
    """Change one byte of the stored object behind the services' back (as bucket rot would)."""
    store = stack.store()
    response = store.client.get_object(store.bucket, key)
    data = bytearray(response.read())
    response.close()
    response.release_conn()
    data[offset] ^= 0x40
    store.client.put_object(store.bucket, key, io.BytesIO(bytes(data)), length=len(data), content_type="audio/wav")


@pytest.fixture(scope="module")
def damaged(stack: Stack) -> dict[str, Any]:
    _uid, token = stack.signup("rot")
    small = tone_wav(1.0, freq=523.0)
    large = tone_wav(40.0, freq=311.0)  # ~2.5 MB: three chunks, over the 1 MiB verify-first limit
    assert len(large) > 2 * CHUNK
    small_key = stack.upload(token, small)["blob_key"]
    large_key = stack.upload(token, large)["blob_key"]
    with stack.client(token) as http:
        repo = http.post("/api/repositories/create", json={"name": "rot"}).json()["id"]
    flip_byte(stack, small_key, 2000)
    flip_byte(stack, large_key, CHUNK + 1000)  # chunk 1 of 0..2
    return {"token": token, "small": (small_key, small), "large": (large_key, large), "repo": repo}


def test_small_corrupt_blob_download_is_a_clean_502(stack: Stack, damaged: dict[str, Any]) -> None:
    key, _data = damaged["small"]
    with stack.client(damaged["token"]) as http:
        for params in ({"redirect": "false"}, {}):  # streamed, and the presigned redirect
            r = http.get(f"/api/audio/download/{key}.wav", params=params)
            assert r.status_code == 502, (params, r.status_code, r.headers)
            assert r.json()["code"] == "DATA_LOSS"
            assert "corrupted" in r.json()["detail"]
        r = http.get(f"/api/audio/download/{key}.wav?redirect=false", headers={"Range": "bytes=0-99"})
        assert r.status_code == 502 and r.json()["code"] == "DATA_LOSS"


def test_large_corrupt_download_stops_before_the_damaged_chunk(stack: Stack, damaged: dict[str, Any]) -> None:
    key, data = damaged["large"]
    received = bytearray()
    with stack.client(damaged["token"]) as http:
        with http.stream("GET", f"/api/audio/download/{key}.wav?redirect=false") as response:
            assert response.status_code == 200
            assert int(response.headers["content-length"]) == len(data)
            b64 = base64.b64encode(bytes.fromhex(key)).decode()
            assert response.headers["repr-digest"] == f"sha-256=:{b64}:"
            assert response.headers["etag"] == f'"{key}"'
            with pytest.raises(httpx.HTTPError):  # the connection ends short of Content-Length
                for piece in response.iter_bytes():
                    received += piece
    assert len(received) < len(data)
    assert bytes(received) == data[: len(received)]  # nothing corrupt went out
    assert len(received) <= CHUNK


def test_ranges_are_checked_per_chunk(stack: Stack, damaged: dict[str, Any]) -> None:
    key, data = damaged["large"]
    with stack.client(damaged["token"]) as http:
        url = f"/api/audio/download/{key}.wav?redirect=false"
        r = http.get(url, headers={"Range": "bytes=100-199"})  # intact chunk 0: served
        assert r.status_code == 206 and r.content == data[100:200]
        r = http.get(url, headers={"Range": f"bytes={2 * CHUNK}-{2 * CHUNK + 9}"})  # intact chunk 2
        assert r.status_code == 206 and r.content == data[2 * CHUNK : 2 * CHUNK + 10]
        r = http.get(url, headers={"Range": f"bytes={CHUNK + 990}-{CHUNK + 1010}"})  # damaged chunk 1
        assert r.status_code == 502 and r.json()["code"] == "DATA_LOSS"


def test_analysis_and_separation_refuse_the_corrupt_input(stack: Stack, damaged: dict[str, Any]) -> None:
    key, _data = damaged["small"]
    token = damaged["token"]
    with stack.client(token) as http:
        r = http.post("/api/ai/analyze-audio", json={"audio_blob": key})
        assert r.status_code == 502 and r.json()["code"] == "DATA_LOSS", r.text
        r = http.post("/api/ai/analyze-audio", json={"audio_blob": key, "background": True})
        assert r.status_code == 200, r.text
        analysis_task = r.json()["task"]["task_id"]
        r = http.post("/api/ai/separate-stems", json={"audio_blob": key, "model": "tiny"})
        assert r.status_code == 202, r.text
        separation_task = r.json()["task_id"]
    for task_id in (analysis_task, separation_task):
        task = stack.finish(token, task_id)
        assert task["status"] == "failed", task
        assert "corrupted" in (task["error"] or ""), task
        assert task["files"] == {}


def test_generation_refuses_corrupt_prompt_audio(stack: Stack, damaged: dict[str, Any]) -> None:
    key, _data = damaged["small"]
    with stack.client(damaged["token"]) as http:
        r = http.post("/api/ai/generate", json={"prompt": "continue", "duration": 1.0, "prompt_audio_blob": key})
    assert r.status_code == 502 and r.json()["code"] == "DATA_LOSS", r.text


def test_commit_naming_a_corrupt_blob_is_refused(stack: Stack, damaged: dict[str, Any]) -> None:
    key, _data = damaged["small"]
    repo = damaged["repo"]
    with stack.client(damaged["token"]) as http:
        r = http.post(f"/api/vcs/commit/{repo}", json={"message": "rot", "stems": [{"name": "lead", "blob_key": key}]})
        assert r.status_code == 502 and r.json()["code"] == "DATA_LOSS", r.text
        r = http.get(f"/api/vcs/history/{repo}")
        assert r.status_code == 404 and "no commits" in r.json()["detail"], r.text  # nothing was committed


def test_uploading_the_original_again_repairs_it(stack: Stack, damaged: dict[str, Any]) -> None:
    key, data = damaged["small"]
    assert stack.upload(damaged["token"], data)["blob_key"] == key
    with stack.client(damaged["token"]) as http:
        r = http.get(f"/api/audio/download/{key}.wav?redirect=false")
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == key
