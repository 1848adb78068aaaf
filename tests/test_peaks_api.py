"""GET /api/audio/peaks/{blob} on the running stack: permission-checked, cached, and matching the audio."""

from __future__ import annotations

import io
import itertools

import numpy as np
import soundfile as sf

from tests.stack_fixtures import Stack, tone_wav


def test_peaks_match_the_upload_and_are_private(stack: Stack) -> None:
    _alice_id, alice = stack.signup("peaks")
    _bob_id, bob = stack.signup("peeker")
    data = tone_wav(3.0, rate=16000, freq=5.0, channels=2, gain=0.5)  # 5 Hz: each bucket sees a slice of a swell
    blob = stack.upload(alice, data)["blob_key"]
    audio, _rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    with stack.client(alice) as http:
        r = http.get(f"/api/audio/peaks/{blob}.wav", params={"buckets": 30})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["length"], body["channels"], body["sample_rate"], body["frames"]) == (30, 2, 16000, 48000)
        assert abs(body["duration_s"] - 3.0) < 1e-9
        edges = np.arange(31) * 48000 // 30
        want = []
        for a, b in itertools.pairwise(edges):
            want += [float(audio[a:b].min()), float(audio[a:b].max())]
        np.testing.assert_allclose(body["data"], want, atol=1e-4)
        assert "immutable" in r.headers["cache-control"]
        # Served again (from the cache) identically; a token in the query works as for downloads.
        again = http.get(f"/api/audio/peaks/{blob}", params={"buckets": 30})
        assert again.json() == body
    with stack.client() as anonymous:
        assert anonymous.get(f"/api/audio/peaks/{blob}").status_code == 401
        assert anonymous.get(f"/api/audio/peaks/{blob}", params={"access_token": alice}).status_code == 200
    with stack.client(bob) as http:
        refused = http.get(f"/api/audio/peaks/{blob}")
        assert refused.status_code == 404 and "not found" in refused.json()["detail"]
        assert http.get("/api/audio/peaks/not-a-blob").status_code == 404
        assert http.get(f"/api/audio/peaks/{blob}", params={"buckets": 0}).status_code == 422


def test_model_info_says_when_weights_are_random(stack: Stack) -> None:
    _id, token = stack.signup("model")
    with stack.client(token) as http:
        info = http.get("/api/ai/model").json()
    assert info["spec"] == "tiny" and info["random_weights"] is True
    assert "random weights" in info["notice"] and "BEATFLOW_GENERATOR_MODEL" in info["how_to_connect"]
