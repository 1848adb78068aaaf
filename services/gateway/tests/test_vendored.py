"""The studio's vendored waveform library is the pinned, licensed release, byte for byte."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources

VENDOR = resources.files("beatflow.gateway") / "static" / "vendor"
STATIC = resources.files("beatflow.gateway") / "static"


def test_vendored_files_match_their_pinned_hashes() -> None:
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"]), "pin an exact version"
    license_text = (VENDOR / manifest["license_file"]).read_text()
    assert "BSD 3-Clause License" in license_text and "katspaugh" in license_text
    assert manifest["files"], "the manifest lists the vendored files"
    for name, entry in manifest["files"].items():
        digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{name} differs from the pinned {manifest['package']} {manifest['version']}"


def test_studio_loads_no_script_from_outside_the_gateway() -> None:
    page = (STATIC / "index.html").read_text()
    for src in re.findall(r'src="([^"]+)"', page):
        assert src.startswith("/static/"), src
    for module in [p for p in STATIC.iterdir() if p.name.endswith(".js")]:
        for target in re.findall(r'from\s+"([^"]+)"', module.read_text()):
            assert target.startswith("./"), f"{module.name} imports {target}"
