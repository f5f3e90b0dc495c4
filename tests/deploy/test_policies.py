"""The rendered overlays meet the deployment policies (tests/deploy/policies.py), and each policy catches a copy
with its property removed, so none of them passes vacuously."""

from __future__ import annotations

import copy

import pytest

from tests.deploy import policies
from tests.deploy.conftest import OVERLAYS


def triton_pod(docs):
    return policies.find(docs, "Deployment", "dsocr-triton")["spec"]["template"]["spec"]


def api_pod(docs):
    return policies.find(docs, "Deployment", "dsocr-api")["spec"]["template"]["spec"]


def drop_run_as_non_root(docs):
    del api_pod(docs)["securityContext"]["runAsNonRoot"]


def drop_init_container_limits(docs):
    del triton_pod(docs)["initContainers"][0]["resources"]["limits"]


def allow_privilege_escalation(docs):
    policies.triton_container(docs)["securityContext"]["allowPrivilegeEscalation"] = True


def drop_gpu_limit(docs):
    del policies.triton_container(docs)["resources"]["limits"]["nvidia.com/gpu"]


def unmount_shm(docs):
    container = policies.triton_container(docs)
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["mountPath"] != "/dev/shm"]


def shm_on_disk(docs):
    next(v for v in triton_pod(docs)["volumes"] if v["name"] == "shm")["emptyDir"].pop("medium")


def drop_startup_probe(docs):
    del policies.triton_container(docs)["startupProbe"]


def liveness_on_ready(docs):
    policies.triton_container(docs)["livenessProbe"]["httpGet"]["path"] = "/v2/health/ready"


def hpa_targets_the_api(docs):
    policies.find(docs, "HorizontalPodAutoscaler", "dsocr-triton")["spec"]["scaleTargetRef"]["name"] = "dsocr-api"


def hpa_on_cpu(docs):
    hpa = policies.find(docs, "HorizontalPodAutoscaler", "dsocr-triton")
    hpa["spec"]["metrics"] = copy.deepcopy(
        policies.find(docs, "HorizontalPodAutoscaler", "dsocr-api")["spec"]["metrics"]
    )


def grpc_open_to_all(docs):
    rule = policies.find(docs, "NetworkPolicy", "triton-grpc-from-api")["spec"]["ingress"][0]
    del rule["from"]


def grpc_policy_on_other_pods(docs):
    policy = policies.find(docs, "NetworkPolicy", "triton-grpc-from-api")
    policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] = "something-else"


def metrics_open_to_the_api(docs):
    rule = policies.find(docs, "NetworkPolicy", "triton-metrics-from-prometheus")["spec"]["ingress"][0]
    rule["from"] = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "dsocr-api"}}}]


def no_default_deny(docs):
    docs[:] = [d for d in docs if d["metadata"]["name"] != "default-deny-ingress"]


def image_latest(docs):
    container = policies.triton_container(docs)
    container["image"] = container["image"].rsplit(":", 1)[0] + ":latest"


def image_untagged(docs):
    container = api_pod(docs)["containers"][0]
    container["image"] = container["image"].rsplit(":", 1)[0]


def api_key_inline(docs):
    env = api_pod(docs)["containers"][0]["env"]
    key = next(e for e in env if e["name"] == "DSOCR_API_API_KEY")
    key.pop("valueFrom")
    key["value"] = "committed-key"


# (policy, overlay, the removal it must catch)
REMOVALS = [
    ("containers_are_locked_down", "cpu-dev", drop_run_as_non_root),
    ("containers_are_locked_down", "gpu", drop_init_container_limits),
    ("containers_are_locked_down", "gpu", allow_privilege_escalation),
    ("triton_has_a_gpu", "gpu", drop_gpu_limit),
    ("triton_has_a_memory_backed_shm", "gpu", unmount_shm),
    ("triton_has_a_memory_backed_shm", "cpu-dev", shm_on_disk),
    ("triton_has_its_probes", "gpu", drop_startup_probe),
    ("triton_has_its_probes", "gpu", liveness_on_ready),
    ("autoscalers_target_their_deployments", "gpu", hpa_targets_the_api),
    ("autoscalers_target_their_deployments", "gpu", hpa_on_cpu),
    ("network_policies_admit_only_their_clients", "gpu", grpc_open_to_all),
    ("network_policies_admit_only_their_clients", "gpu", grpc_policy_on_other_pods),
    ("network_policies_admit_only_their_clients", "gpu", metrics_open_to_the_api),
    ("network_policies_admit_only_their_clients", "cpu-dev", no_default_deny),
    ("images_are_pinned", "gpu", image_latest),
    ("images_are_pinned", "cpu-dev", image_untagged),
    ("api_key_comes_from_a_secret", "gpu", api_key_inline),
]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("policy", sorted(policies.POLICIES))
def test_every_overlay_meets_the_policy(rendered, overlay, policy):
    policies.POLICIES[policy](rendered[overlay])


def test_the_gpu_overlay_gives_triton_a_gpu(rendered):
    policies.triton_has_a_gpu(rendered["gpu"])


def test_the_cpu_dev_overlay_asks_for_no_gpu(rendered):
    with pytest.raises(AssertionError):
        policies.triton_has_a_gpu(rendered["cpu-dev"])


@pytest.mark.parametrize("policy, overlay, removal", REMOVALS, ids=[r[2].__name__ for r in REMOVALS])
def test_the_policy_fails_when_its_property_is_removed(rendered, policy, overlay, removal):
    docs = copy.deepcopy(rendered[overlay])
    removal(docs)
    check = policies.POLICIES.get(policy) or getattr(policies, policy)
    with pytest.raises(AssertionError):
        check(docs)


def test_every_policy_has_a_removal_it_catches():
    assert {policy for policy, _, _ in REMOVALS} == set(policies.POLICIES) | {"triton_has_a_gpu"}
