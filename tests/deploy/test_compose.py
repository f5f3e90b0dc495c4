"""compose.yaml runs the stack from the project's images at the package version, with shared memory for Triton."""

from __future__ import annotations

import yaml

from tests.deploy.conftest import ROOT
from tests.deploy.policies import OWN_IMAGES, VERSION

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_every_image_is_pinned_and_ours_carry_the_package_version():
    for name, service in COMPOSE["services"].items():
        repository, _, tag = service["image"].rpartition(":")
        assert tag and tag != "latest" and "/" not in tag, f"{name}: {service['image']} is not pinned"
        if repository in OWN_IMAGES:
            assert tag == VERSION, f"{name}: {service['image']} is not version {VERSION}"


def test_both_triton_profiles_set_shm_size_and_answer_as_triton():
    triton, cpu = COMPOSE["services"]["triton"], COMPOSE["services"]["triton-cpu"]
    assert triton["profiles"] == ["gpu"] and cpu["profiles"] == ["cpu"]
    assert triton["shm_size"] and cpu["shm_size"]
    assert "triton" in cpu["networks"]["default"]["aliases"]


def test_prometheus_loads_the_rules_from_monitoring():
    volumes = COMPOSE["services"]["prometheus"]["volumes"]
    assert "./monitoring/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes
    assert "./monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
