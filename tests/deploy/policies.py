"""Policies the rendered manifests must meet. Each takes one overlay's documents and raises AssertionError naming
the object when the policy does not hold; tests/deploy/test_policies.py applies them to every overlay, and to
copies with the property removed."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
OWN_IMAGES = ("ghcr.io/dsocr/dsocr-triton", "ghcr.io/dsocr/dsocr-api")


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert matches, f"no {kind} {name}"
    return matches[0]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] == "Deployment"]


def containers(pod: dict) -> list[dict]:
    return pod.get("initContainers", []) + pod["containers"]


def triton_container(docs: list[dict]) -> dict:
    pod = find(docs, "Deployment", "dsocr-triton")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "triton")


def containers_are_locked_down(docs: list[dict]) -> None:
    """Non-root, seccomp RuntimeDefault, no privilege escalation, every capability dropped, CPU and memory limits."""
    for name, pod in pod_specs(docs):
        security = pod.get("securityContext", {})
        assert security.get("runAsNonRoot") is True, f"{name}: the pod may run as root"
        assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: no RuntimeDefault seccomp"
        for container in containers(pod):
            where = f"{name}/{container['name']}"
            context = container.get("securityContext", {})
            assert context.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation allowed"
            assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities not all dropped"
            limits = container.get("resources", {}).get("limits", {})
            assert {"cpu", "memory"} <= limits.keys(), f"{where}: no cpu and memory limits"


def triton_has_a_gpu(docs: list[dict]) -> None:
    limits = triton_container(docs)["resources"]["limits"]
    assert int(limits.get("nvidia.com/gpu", 0)) >= 1, "dsocr-triton: no nvidia.com/gpu limit"


def triton_has_a_memory_backed_shm(docs: list[dict]) -> None:
    pod = find(docs, "Deployment", "dsocr-triton")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in triton_container(docs).get("volumeMounts", [])}
    assert "/dev/shm" in mounts, "dsocr-triton: nothing mounted at /dev/shm"
    volume = next(v for v in pod["volumes"] if v["name"] == mounts["/dev/shm"])
    empty_dir = volume.get("emptyDir", {})
    assert empty_dir.get("medium") == "Memory" and "sizeLimit" in empty_dir, "/dev/shm: not a sized Memory emptyDir"


def triton_has_its_probes(docs: list[dict]) -> None:
    container = triton_container(docs)
    expected = {
        "startupProbe": "/v2/health/ready",
        "livenessProbe": "/v2/health/live",
        "readinessProbe": "/v2/health/ready",
    }
    for probe, path in expected.items():
        assert container.get(probe, {}).get("httpGet", {}).get("path") == path, f"dsocr-triton: {probe} not on {path}"


def autoscalers_target_their_deployments(docs: list[dict]) -> None:
    """Triton scales on the adapter's queue-time metric, the API on CPU; each targets a Deployment that exists."""
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    expected = {"dsocr-triton": ("Pods", "avg_time_queue_us"), "dsocr-api": ("Resource", "cpu")}
    for name, (metric_type, metric) in expected.items():
        spec = find(docs, "HorizontalPodAutoscaler", name)["spec"]
        target = spec["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] == name, f"HPA {name} targets {target}"
        assert target["name"] in deployments, f"HPA {name}: no Deployment {target['name']}"
        names = [m["pods"]["metric"]["name"] if m["type"] == "Pods" else m["resource"]["name"] for m in spec["metrics"]]
        assert [m["type"] for m in spec["metrics"]] == [metric_type] and names == [metric], f"HPA {name}: {names}"


def _selects(selector: dict, labels: dict) -> bool:
    match = selector.get("matchLabels", {})
    expressions = selector.get("matchExpressions", [])
    return all(labels.get(k) == v for k, v in match.items()) and all(
        labels.get(e["key"]) in e["values"] if e["operator"] == "In" else False for e in expressions
    )


def pod_labels(docs: list[dict], deployment: str) -> dict:
    return find(docs, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"]


def network_policies_admit_only_their_clients(docs: list[dict]) -> None:
    """Ingress is denied by default; Triton's gRPC admits the API pods only, the metrics ports Prometheus only."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = find(docs, "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and not deny.get("ingress"), (
        "no default deny"
    )
    triton, api = pod_labels(docs, "dsocr-triton"), pod_labels(docs, "dsocr-api")
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    admitted: dict[int, list[dict]] = {}
    for policy in policies:
        if not _selects(policy["spec"]["podSelector"], triton):
            continue
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                admitted.setdefault(port["port"], []).extend(rule.get("from", [{}]))
    grpc, metrics = admitted.get(8001, []), admitted.get(8002, [])
    assert grpc and all(
        "namespaceSelector" not in peer and _selects(peer.get("podSelector", {"matchLabels": {"x": "y"}}), api)
        for peer in grpc
    ), f"Triton's gRPC admits {grpc}"
    assert not _selects(grpc[0]["podSelector"], prometheus), "Triton's gRPC admits Prometheus"
    assert metrics and all(
        peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "monitoring"
        and _selects(peer.get("podSelector", {"matchLabels": {"x": "y"}}), prometheus)
        for peer in metrics
    ), f"Triton's metrics admit {metrics}"
    assert admitted.keys() == {8001, 8002}, f"Triton admits ports {sorted(admitted)}"


def images_are_pinned(docs: list[dict]) -> None:
    """No `latest` and no untagged image; the project's own images carry the package version."""
    for name, pod in pod_specs(docs):
        for container in containers(pod):
            image = container["image"]
            repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
            assert tag and tag != "latest", f"{name}/{container['name']}: image {image} is not pinned"
            if repository in OWN_IMAGES:
                assert tag == VERSION, f"{name}/{container['name']}: {image} is not version {VERSION}"


def api_key_comes_from_a_secret(docs: list[dict]) -> None:
    pod = find(docs, "Deployment", "dsocr-api")["spec"]["template"]["spec"]
    env = {e["name"]: e for c in pod["containers"] for e in c.get("env", [])}
    key = env.get("DSOCR_API_API_KEY", {})
    assert "secretKeyRef" in key.get("valueFrom", {}), "dsocr-api: DSOCR_API_API_KEY is not from a Secret"
    assert "value" not in key, "dsocr-api: the API key is written in the manifest"


POLICIES = {
    "containers_are_locked_down": containers_are_locked_down,
    "triton_has_a_memory_backed_shm": triton_has_a_memory_backed_shm,
    "triton_has_its_probes": triton_has_its_probes,
    "autoscalers_target_their_deployments": autoscalers_target_their_deployments,
    "network_policies_admit_only_their_clients": network_policies_admit_only_their_clients,
    "images_are_pinned": images_are_pinned,
    "api_key_comes_from_a_secret": api_key_comes_from_a_secret,
}
