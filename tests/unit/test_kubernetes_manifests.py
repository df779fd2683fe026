"""deploy/kubernetes, rendered as kustomize would (namespace, labels, image) and checked offline against the
Kubernetes API schemas (kubernetes-validate bundles them), then against notify itself: every variable the
ConfigMap and Secrets set is a setting, every probe hits a route the process serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from notify.settings import Settings

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"
SETTINGS = {f"NOTIFY_{name.upper()}" for name in Settings.model_fields}
CLUSTER_SCOPED = {"Namespace"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def render() -> list[dict[str, Any]]:
    """The kustomization's resources with its namespace, labels and image applied (the subset of kustomize
    this base uses)."""
    kustomization = yaml.safe_load((ROOT / "kustomization.yaml").read_text())
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization.get("images", [])}
    labels: dict[str, str] = {}
    for entry in kustomization.get("labels", []):
        labels.update(entry["pairs"])
    out = []
    for name in kustomization["resources"]:
        for doc in _documents(ROOT / name):
            meta = doc.setdefault("metadata", {})
            if doc["kind"] not in CLUSTER_SCOPED:
                meta["namespace"] = kustomization["namespace"]
            meta.setdefault("labels", {}).update(labels)
            for container in _containers(doc):
                container["image"] = images.get(container["image"], container["image"])
            out.append(doc)
    return out


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "Job"):
        spec: dict[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pod = _pod_spec(doc)
    return list(pod["containers"]) if pod else []


RENDERED = render()
SECRETS = _documents(ROOT / "secret.example.yaml")


@pytest.mark.parametrize("doc", RENDERED + SECRETS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_object_is_valid_for_the_kubernetes_api(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_base_has_what_a_production_deployment_needs() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in RENDERED}
    for name in ("notify-api", "notify-worker"):
        assert {
            ("Deployment", name),
            ("PodDisruptionBudget", name),
            ("HorizontalPodAutoscaler", name),
        } <= kinds
    assert ("Job", "notify-migrate") in kinds and ("ConfigMap", "notify-config") in kinds
    images = {c["image"] for d in RENDERED for c in _containers(d)}
    assert images == {"registry.example.com/notify:0.1.0"}


def test_every_variable_set_is_a_setting_and_every_reference_resolves() -> None:
    configmaps = {d["metadata"]["name"]: d for d in RENDERED if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d for d in SECRETS}
    for cm in configmaps.values():
        assert set(cm["data"]) <= SETTINGS, set(cm["data"]) - SETTINGS
    for secret in secrets.values():
        assert set(secret["stringData"]) <= SETTINGS, set(secret["stringData"]) - SETTINGS
    for doc in RENDERED:
        for container in _containers(doc):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
            assert {e["name"] for e in container.get("env", [])} <= SETTINGS


def test_deployments_probe_real_routes_run_unprivileged_and_are_bounded() -> None:
    served = {"/health", "/health/ready"}  # both processes serve these (API on 8080, worker on 8081)
    for doc in RENDERED:
        pod = _pod_spec(doc)
        if pod is None:
            continue
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            if doc["kind"] != "Deployment":
                continue
            ports = {p["name"] for p in container["ports"]}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                http = container[probe]["httpGet"]
                assert http["path"] in served and http["port"] in ports, (doc["metadata"]["name"], probe)


def test_budgets_and_autoscalers_point_at_the_deployments() -> None:
    deployments = {
        d["metadata"]["name"]: d["spec"]["selector"]["matchLabels"]
        for d in RENDERED
        if d["kind"] == "Deployment"
    }
    for doc in RENDERED:
        if doc["kind"] == "PodDisruptionBudget":
            assert doc["spec"]["selector"]["matchLabels"] in deployments.values()
        if doc["kind"] == "HorizontalPodAutoscaler":
            assert doc["spec"]["scaleTargetRef"]["name"] in deployments
