"""Wheels for ``make gpu-check`` on a bare GPU machine: what it imports that the machine's image lacks.

The GPU machines this project can use have no network and their own Python 3.12 with torch,
transformers, numpy, scipy and pytest (see ``GPU_IMAGE``). This finds the distributions that
``bench/gpu_check.py`` and the ``gpu``-marked tests really import (by importing them here and mapping
the loaded modules to their distributions), drops those the image already has, and downloads the
same versions as cp312 manylinux x86-64 wheels into a folder (default ``.whl/``, ignored by git)
that travels with the command:

    python bench/gpu_wheels.py .whl          # or: make gpu-wheels
    # then on the GPU machine, from the repository root:
    make gpu-check PY=python3 GPU_WHEELS=.whl

Written by hand because no packaging tool computes "the import closure of these modules minus
another machine's environment"; the download itself is pip's.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(_HERE).parent

# What the GPU machines' image holds (their documented package list); carried only when missing.
GPU_IMAGE = set(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
    certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
    cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
    flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
    huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jaxlib jaxtyping jinja2 joblib
    kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
    markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch
    mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro onnx onnx-ir onnxruntime
    onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas
    pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
    py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
    pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
    safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
    setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
    tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
    torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
    typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
    zipp""".split()
)
# Never carried: the image's own CUDA torch stack, and the project's own code (it travels as source).
NEVER = re.compile(r"^(torch.*|nvidia-.*|triton|beatflow-.*)$")

# Imported by gpu_check.py, the bench scripts it runs and the gpu-marked test files (with conftest).
PROBE = """
import importlib, importlib.metadata as md, json, runpy, sys
sys.argv = ["probe"]
for mod in ["beatflow.generator.engine", "beatflow.generator.presets", "beatflow.separator.models",
            "beatflow.separator.separation", "beatflow.separator.audio_stream", "beatflow.separator.testsignals",
            "demucs.apply", "soundfile", "pytest", "pytest_asyncio"]:
    importlib.import_module(mod)
for path in ["conftest.py", "services/generator/tests/conftest.py", "services/separator/tests/conftest.py",
             *FILES]:
    try:
        runpy.run_path(path, run_name="probe")
    except FileNotFoundError:
        pass
owners = md.packages_distributions()
dists = set()
for name in list(sys.modules):
    top = name.split(".")[0]
    for dist in owners.get(top, []):
        dists.add(dist)
print(json.dumps(sorted({d: md.version(d) for d in dists}.items())))
"""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def needed() -> dict[str, str]:
    sys.path.insert(0, _HERE)
    try:
        from gpu_check import GPU_TEST_FILES
    finally:
        sys.path.pop(0)
    code = PROBE.replace("*FILES", ", ".join(repr(f) for f in GPU_TEST_FILES))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    found = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        name: version
        for name, version in sorted(found.items())
        if _norm(name) not in GPU_IMAGE and not NEVER.match(_norm(name))
    }


def download(dists: dict[str, str], dest: Path) -> None:
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    platforms += ["manylinux1_x86_64", "manylinux_2_24_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64"]
    base = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest)]
    binary = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
    binary += [arg for p in platforms for arg in ("--platform", p)]
    for name, version in dists.items():
        spec = f"{name}=={version}"
        if subprocess.run([*base, *binary, spec]).returncode != 0:
            # a pure-Python project published only as a source archive: build its wheel here
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), spec], check=True)


def main() -> int:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / ".whl")
    dest.mkdir(parents=True, exist_ok=True)
    dists = needed()
    print("carrying:", ", ".join(f"{n}=={v}" for n, v in dists.items()))
    download(dists, dest)
    total = sum(p.stat().st_size for p in dest.glob("*.whl"))
    print(f"{len(list(dest.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
