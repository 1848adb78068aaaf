"""The deployment files follow BeatFlow's rules, and the rules catch what they are for.

The committed Dockerfiles, docker-compose.yml and both kustomize overlays
(rendered with ``kubectl kustomize``) must pass ``deploy/validate.py``'s rule
checks; each rule is also shown to fail on a copy broken on purpose. Schema and
linter runs (kubernetes-validate, hadolint, docker-compose config) are
``deploy/validate.sh``'s job, which installs those tools.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _load_validate() -> Any:
    spec = importlib.util.spec_from_file_location("beatflow_deploy_validate", ROOT / "deploy" / "validate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


validate = _load_validate()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay: validate.render_overlay(overlay) for overlay in validate.OVERLAYS}


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    return spec


# ------------------------------------------------------------------ Dockerfiles


@pytest.mark.parametrize("service", list(validate.SERVICES))
def test_dockerfile_follows_rules(service: str) -> None:
    text = validate.dockerfile_path(service).read_text()
    assert list(validate.dockerfile_problems(service, text)) == []


@pytest.mark.parametrize(
    ("service", "breakage", "expected"),
    [
        ("vcs", lambda t: t.replace("USER 10001:10001", "USER root"), "non-root"),
        ("vcs", lambda t: t.replace("HEALTHCHECK", "# HEALTHCHECK"), "HEALTHCHECK"),
        ("gateway", lambda t: t.replace("COPY services/gateway/", "COPY services/generator/"), "another service"),
        ("generator", lambda t: t.replace("HF_HOME=/models/huggingface", "HF_HOME=/app/hf"), "HF_HOME"),
        ("separator", lambda t: t + "RUN python -c 'from_pretrained(\"x\")'\n", "downloads model weights"),
        ("generator", lambda t: t.replace("ARG VARIANT=cuda", "ARG FLAVOUR=cuda"), "VARIANT"),
    ],
)
def test_dockerfile_rules_catch_breakage(service: str, breakage: Callable[[str], str], expected: str) -> None:
    text = breakage(validate.dockerfile_path(service).read_text())
    problems = list(validate.dockerfile_problems(service, text))
    assert any(expected in p for p in problems), problems


def test_dockerfile_instructions_join_continuations() -> None:
    parsed = validate.dockerfile_instructions("FROM a AS b\n# note\nRUN one \\\n    two\nUSER 1\n")
    assert parsed == [("FROM", "a AS b"), ("RUN", "one      two"), ("USER", "1")]


# ---------------------------------------------------------------- compose


def compose_problems(compose: dict[str, Any], extra_text: str = "") -> list[str]:
    text = (ROOT / "docker-compose.yml").read_text() + extra_text
    return list(validate.compose_problems(compose, text, validate.env_example_keys()))


def test_compose_follows_rules() -> None:
    assert compose_problems(validate.load_compose()) == []


def test_compose_profiles_put_gpu_and_cpu_backends_behind_the_same_names() -> None:
    services = validate.load_compose()["services"]
    for role in ("generator", "separator"):
        gpu, cpu = services[role], services[f"{role}-cpu"]
        assert gpu["profiles"] == ["gpu"] and cpu["profiles"] == ["cpu"]
        assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
        assert "deploy" not in cpu
        assert role in cpu["networks"]["default"]["aliases"]
        assert cpu["build"]["args"]["VARIANT"] == "cpu"
        assert cpu["environment"][f"BEATFLOW_{role.upper()}_DEVICE"] == "cpu"
    # Always-on services never wait for a profile's service.
    for name, svc in services.items():
        if not svc.get("profiles"):
            profiled = {"generator", "separator", "generator-cpu", "separator-cpu"}
            assert not set(svc.get("depends_on") or {}) & profiled, name


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda c: c["services"]["vcs"].pop("healthcheck"), "vcs: no healthcheck"),
        (lambda c: c["services"]["generator"].pop("deploy"), "reserves no NVIDIA GPU"),
        (
            lambda c: c["services"]["separator-cpu"].update(deploy=copy.deepcopy(c["services"]["separator"]["deploy"])),
            "reserves a GPU",
        ),
        (lambda c: c["services"]["gateway"].update(depends_on=["vcs"]), "without conditions"),
        (
            lambda c: c["services"]["gateway"]["depends_on"].update(generator={"condition": "service_healthy"}),
            "only runs in a profile",
        ),
        (
            lambda c: c["services"]["vcs"]["depends_on"]["vcs-migrate"].update(condition="service_started"),
            "service_completed_successfully",
        ),
        (lambda c: c["services"]["generator-cpu"]["networks"]["default"].update(aliases=[]), "0 services answer"),
        (lambda c: c["services"].pop("minio-init"), "bucket"),
    ],
)
def test_compose_rules_catch_breakage(breakage: Callable[[dict[str, Any]], Any], expected: str) -> None:
    compose = validate.load_compose()
    breakage(compose)
    problems = compose_problems(compose)
    assert any(expected in p for p in problems), problems


def test_compose_variables_must_be_documented() -> None:
    problems = compose_problems(validate.load_compose(), "\n# ${BEATFLOW_SOMETHING_NEW}\n")
    assert problems == ["${BEATFLOW_SOMETHING_NEW} is not documented in .env.example"]


def test_compose_settings_are_real_service_settings() -> None:
    """Every BEATFLOW_* variable compose sets is a field of some service's settings."""
    from beatflow.gateway.config import GatewaySettings
    from beatflow.generator.config import GeneratorSettings
    from beatflow.separator.config import SeparatorSettings
    from beatflow.vcs.config import VcsSettings

    fields = {
        f"BEATFLOW_{name.upper()}"
        for cls in (GatewaySettings, GeneratorSettings, SeparatorSettings, VcsSettings)
        for name in cls.model_fields
    }
    compose = validate.load_compose()
    environments = [svc.get("environment") or {} for svc in compose["services"].values()]
    used = {key for env in environments for key in env if key.startswith("BEATFLOW_")}
    assert used and used <= fields, sorted(used - fields)
    config = yaml.safe_load((ROOT / "deploy/k8s/base/kustomization.yaml").read_text())
    literals = [lit.split("=", 1)[0] for gen in config["configMapGenerator"] for lit in gen["literals"]]
    for overlay in validate.OVERLAYS:
        over = yaml.safe_load((ROOT / f"deploy/k8s/overlays/{overlay}/kustomization.yaml").read_text())
        literals += [lit.split("=", 1)[0] for gen in over["configMapGenerator"] for lit in gen["literals"]]
    beatflow_literals = {key for key in literals if key.startswith("BEATFLOW_")}
    assert beatflow_literals <= fields, sorted(beatflow_literals - fields)


# ------------------------------------------------------------- Kubernetes


# ids must not be the bare word "gpu": the root conftest skips tests with a "gpu" keyword without CUDA.
@pytest.mark.parametrize("overlay", validate.OVERLAYS, ids=lambda overlay: f"{overlay}-overlay")
def test_overlay_follows_rules(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    assert list(validate.k8s_problems(rendered[overlay], overlay)) == []


def test_gpu_overlay_gives_each_worker_a_gpu_and_scales_on_queue_depth(rendered: dict[str, list[Any]]) -> None:
    docs = rendered["gpu"]
    for name in validate.GPU_SERVICES:
        c = container(docs, name)
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert c["image"].endswith(":0.1.0")
        hpa = find(docs, "HorizontalPodAutoscaler", name)
        metric = hpa["spec"]["metrics"][0]
        assert metric["type"] == "External"
        assert metric["external"]["metric"]["name"] == "beatflow_job_queue_depth"
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("beatflow-config"))
    assert config["data"]["BEATFLOW_GENERATOR_DEVICE"] == "cuda"


def test_cpu_overlay_runs_tiny_models_without_gpu_or_model_volume(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["cpu"]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("beatflow-config"))
    assert config["data"]["BEATFLOW_GENERATOR_MODEL"] == "tiny"
    assert config["data"]["BEATFLOW_SEPARATOR_MODEL"] == "tiny"
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    for name in validate.GPU_SERVICES:
        c = container(docs, name)
        assert "nvidia.com/gpu" not in c["resources"].get("limits", {})
        assert c["image"].endswith(":0.1.0-cpu")
        volumes = find(docs, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
        assert all("persistentVolumeClaim" not in v for v in volumes)


def test_grpc_services_probe_grpc_health_and_allow_model_load(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["gpu"]
    for name, (port, _metrics, _model) in validate.SERVICES.items():
        if port is None:
            continue
        c = container(docs, name)
        assert {c[p]["grpc"]["port"] for p in ("startupProbe", "readinessProbe", "livenessProbe")} == {port}
    generator = container(docs, "generator")["startupProbe"]
    assert generator["periodSeconds"] * generator["failureThreshold"] >= 600


def test_database_url_and_credentials_come_from_the_secret(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["gpu"]
    secret = next(d for d in docs if d["kind"] == "Secret")
    env = {e["name"]: e for e in container(docs, "vcs")["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert "$(POSTGRES_PASSWORD)" in env["BEATFLOW_DATABASE_URL"]["value"]
    job = find(docs, "Job", "vcs-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_vcs_leaves_migrations_to_the_job_and_waits_longer_than_its_probe_allows(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    vcs = container(rendered["gpu"], "vcs")
    env = {e["name"]: e.get("value") for e in vcs["env"]}
    assert env["BEATFLOW_MIGRATE_ON_START"] == "false"
    startup = vcs["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > float(env["BEATFLOW_SCHEMA_WAIT_S"])
    compose_vcs = validate.load_compose()["services"]["vcs"]
    assert compose_vcs["environment"]["BEATFLOW_MIGRATE_ON_START"] == "false"
    assert compose_vcs["depends_on"]["vcs-migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda docs: container(docs, "generator").pop("startupProbe"), "generator: no startupProbe"),
        (lambda docs: container(docs, "vcs")["readinessProbe"].update(grpc={"port": 1}), "not a gRPC probe"),
        (lambda docs: container(docs, "separator")["resources"]["limits"].pop("nvidia.com/gpu"), "nvidia.com/gpu"),
        (lambda docs: container(docs, "generator")["startupProbe"].update(failureThreshold=3), "startupProbe allows"),
        (
            lambda docs: find(docs, "Service", "vcs")["spec"]["selector"].update({"app.kubernetes.io/name": "vsc"}),
            "selects no pods",
        ),
        (
            lambda docs: find(docs, "HorizontalPodAutoscaler", "generator")["spec"]["scaleTargetRef"].update(
                name="gen"
            ),
            "targets missing",
        ),
        (lambda docs: container(docs, "gateway").update(image="beatflow/gateway:latest"), "no pinned tag"),
        (lambda docs: find(docs, "Deployment", "vcs")["spec"]["template"]["spec"].pop("securityContext"), "as root"),
        (lambda docs: docs.remove(find(docs, "Ingress", "gateway")), "no Ingress"),
        (lambda docs: docs.remove(find(docs, "PodDisruptionBudget", "generator")), "no PodDisruptionBudget generator"),
        (
            lambda docs: container(docs, "gateway")["envFrom"][0]["configMapRef"].update(name="nope"),
            "missing ConfigMap nope",
        ),
        (
            lambda docs: (
                find(docs, "NetworkPolicy", "postgres-from-vcs")["spec"]["ingress"][0]["ports"].clear()
                or find(docs, "NetworkPolicy", "postgres-from-vcs")["spec"]["ingress"][0]["ports"].append(
                    {"port": 5433}
                )
            ),
            "no NetworkPolicy lets in port 5432",
        ),
        (
            lambda docs: find(docs, "NetworkPolicy", "backends-from-gateway")["spec"]["podSelector"][
                "matchExpressions"
            ][0].update(values=["vcs", "generator"]),
            "no NetworkPolicy lets in port 50052",
        ),
    ],
)
def test_k8s_rules_catch_breakage(
    rendered: dict[str, list[dict[str, Any]]], breakage: Callable[[list[dict[str, Any]]], Any], expected: str
) -> None:
    docs = copy.deepcopy(rendered["gpu"])
    breakage(docs)
    problems = list(validate.k8s_problems(docs, "gpu"))
    assert any(expected in p for p in problems), problems


def test_cpu_overlay_must_not_ask_for_gpus(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = copy.deepcopy(rendered["cpu"])
    container(docs, "generator")["resources"].setdefault("limits", {})["nvidia.com/gpu"] = "1"
    assert any("cpu overlay requests a GPU" in p for p in validate.k8s_problems(docs, "cpu"))


# ----------------------------------------------------------------- alerts


def test_alerts_read_exported_metrics_and_have_runbook_sections() -> None:
    rules = yaml.safe_load((ROOT / "deploy/monitoring/prometheus-rules.yaml").read_text())
    names = validate.exported_metric_names()
    assert {"beatflow_rpc_total", "beatflow_job_seconds_bucket", "beatflow_gpu_memory_bytes"} <= names
    assert list(validate.alert_problems(rules, names, validate.readme_anchors())) == []
    alerts = [r["alert"] for g in rules["spec"]["groups"] for r in g["rules"]]
    assert len(alerts) >= 8


def test_alert_rules_catch_unknown_metrics_and_missing_runbook() -> None:
    rules = yaml.safe_load((ROOT / "deploy/monitoring/prometheus-rules.yaml").read_text())
    rule = rules["spec"]["groups"][0]["rules"][0]
    rule["expr"] = "beatflow_no_such_metric > 0"
    rule["annotations"]["runbook_url"] = "deploy/README.md#nowhere"
    problems = list(validate.alert_problems(rules, validate.exported_metric_names(), validate.readme_anchors()))
    assert any("beatflow_no_such_metric" in p for p in problems)
    assert any("#nowhere" in p for p in problems)


def test_pod_monitor_scrapes_every_service(rendered: dict[str, list[dict[str, Any]]]) -> None:
    monitor = yaml.safe_load((ROOT / "deploy/monitoring/podmonitor.yaml").read_text())
    assert list(validate.pod_monitor_problems(monitor, rendered["cpu"])) == []
    monitor["spec"]["selector"]["matchExpressions"][0]["values"].remove("separator")
    monitor["spec"]["podMetricsEndpoints"][0]["port"] = "prom"
    problems = list(validate.pod_monitor_problems(monitor, rendered["cpu"]))
    assert "does not select the separator pods" in problems
    assert "vcs pods have no port named ['prom']" in problems


def test_report_collects_passes_and_problems() -> None:
    report = validate.Report()
    validate.check_dockerfiles(report, require_tools=False)
    validate.check_alerts(report)
    report.extend("broken on purpose", ["one", "two"])
    assert {"alerts", "dockerfile vcs rules", "dockerfile generator rules"} <= set(report.passed)
    assert report.problems == ["broken on purpose: one", "broken on purpose: two"]
    assert "broken on purpose" not in report.passed
