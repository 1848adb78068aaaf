"""Model loading: presets, a demucs-layout model directory, clear errors, the tiny fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from demucs.apply import BagOfModels

from beatflow.common.errors import Unavailable
from beatflow.separator import models


def test_tiny_preset_is_small_deterministic_and_four_stems() -> None:
    a, b = models.load_model("tiny", device="cpu"), models.load_model("tiny", device="cpu")
    assert a.sources == ["drums", "bass", "other", "vocals"]
    assert a.samplerate == 44100 and a.audio_channels == 2
    assert a.num_parameters < 1_000_000
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    x = torch.randn(1, 2, 44100)
    with torch.no_grad():
        assert torch.equal(a.model(x), b.model(x))


def test_pretrained_name_loads_from_a_local_model_dir(tmp_path: Path) -> None:
    models.save_to_model_dir(models.build_tiny(), tmp_path, "0a1b2c3d", bag="htdemucs")
    assert any(p.name.startswith("0a1b2c3d-") and p.suffix == ".th" for p in tmp_path.iterdir())
    loaded = models.load_model("htdemucs", model_dir=tmp_path, device="cpu")
    assert isinstance(loaded.model, BagOfModels)
    assert loaded.sources == ["drums", "bass", "other", "vocals"]
    assert loaded.max_segment_s == pytest.approx(4.0)
    single = models.load_model("0a1b2c3d", model_dir=tmp_path, device="cpu")  # a bare signature too
    ref = models.build_tiny()
    for pa, pb in zip(single.model.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-3)  # stored in half precision, as demucs does


def test_missing_model_names_the_model_and_the_tiny_option(tmp_path: Path) -> None:
    with pytest.raises(Unavailable) as err:
        models.load_model("htdemucs_6s", model_dir=tmp_path, device="cpu")
    assert "htdemucs_6s" in err.value.message and "tiny" in err.value.message
    registry = models.ModelRegistry(default="htdemucs_ft", model_dir=tmp_path, device="cpu", fallback_tiny=False)
    with pytest.raises(Unavailable):
        registry.get()


def test_fallback_to_tiny_for_the_default_model_only(tmp_path: Path) -> None:
    registry = models.ModelRegistry(default="htdemucs", model_dir=tmp_path, device="cpu", fallback_tiny=True)
    model = registry.get()
    assert model.name == "tiny"
    assert registry.get("htdemucs") is model and registry.get("tiny") is model  # loaded once
    with pytest.raises(Unavailable):
        registry.get("htdemucs_6s")


def test_known_model_names(tmp_path: Path) -> None:
    assert models.known_model("htdemucs_6s", None) and models.known_model("tiny", None)
    assert not models.known_model("mdx_q", None)
    (tmp_path / "mdx_q.yaml").write_text("models: []\n")
    assert models.known_model("mdx_q", tmp_path)
