"""The helm chart rendered by Helm's own engine, and every manifest validated strictly.

helm-sdkpy needs Python >= 3.12 and the project runs on 3.11, so it lives in a venv of its own
(the `helm_python` fixture, conftest.py); helm_render.py runs there and hands back JSON. The examples in helm/examples are that renderer's output, checked
here byte for byte; regenerate them with

    REGENERATE_HELM_EXAMPLES=1 .venv/bin/python -m pytest tests/deploy/test_chart.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from gristmill.cli.manifests import groups
from gristmill.cli.serve import load_app
from tests.deploy.conftest import RENDERER
from tests.test_deploy_files import CHART, EXAMPLES, RELEASES, release_values

if TYPE_CHECKING:
    from pathlib import Path

RELEASE_NAMES = {"default": "shop", "split": "mill", "keda": "shop"}
SOURCE = "# Source: "  # an example's own comment header ends where the rendered text starts


def render(
    helm_python: Path, values: dict[str, Any], release: str, tmp_path: Path, chart: Path = CHART
) -> dict[str, Any]:
    values_file = tmp_path / f"values-{release}.json"
    values_file.write_text(json.dumps(values))
    done = subprocess.run(
        [str(helm_python), str(RENDERER), str(chart), str(values_file), release],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def rendered(helm_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every example release, rendered once."""
    scratch = tmp_path_factory.mktemp("helm")
    return {
        release: render(helm_python, release_values(release), RELEASE_NAMES[release], scratch)
        for release in RELEASES
    }


def kinds(result: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The rendered objects of `kind`, by the service (component label) they belong to."""
    return {
        obj["metadata"]["labels"]["app.kubernetes.io/component"]: obj
        for obj in result["manifests"]
        if obj["kind"] == kind
    }


@pytest.mark.parametrize("release", RELEASES)
def test_the_chart_renders_and_every_manifest_is_valid(
    release: str, rendered: dict[str, Any]
) -> None:
    result = rendered[release]
    assert result["errors"] == []
    assert [m for m in result["lint"] if m["severity"] == "error"] == []
    assert result["invalid"] == [], "\n".join(result["invalid"])
    services = {service["name"] for service in release_values(release)["services"]}
    assert set(kinds(result, "Deployment")) == services


@pytest.mark.parametrize("release", RELEASES)
def test_the_examples_are_what_helm_renders(release: str, rendered: dict[str, Any]) -> None:
    example = RELEASES[release][1]
    header, _, _ = example.read_text().partition(SOURCE)
    text = rendered[release]["text"]
    assert text.startswith(SOURCE)
    if os.environ.get("REGENERATE_HELM_EXAMPLES"):
        example.write_text(header + text)
    assert example.read_text() == header + text


@pytest.mark.parametrize("release", RELEASES)
def test_each_pod_is_probed_on_the_health_server(release: str, rendered: dict[str, Any]) -> None:
    port = release_values(release)["health"]["port"]
    for deployment in kinds(rendered[release], "Deployment").values():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["GRISTMILL_HEALTH_PORT"] == str(port)
        assert container["ports"] == [{"name": "health", "containerPort": port, "protocol": "TCP"}]
        probes = {
            kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        assert probes == {
            "startupProbe": ("/livez", "health"),
            "livenessProbe": ("/livez", "health"),
            "readinessProbe": ("/readyz", "health"),
        }
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("release", RELEASES)
def test_each_service_has_a_disruption_budget_when_enabled(
    release: str, rendered: dict[str, Any]
) -> None:
    values = release_values(release)
    budgets = kinds(rendered[release], "PodDisruptionBudget")
    names = {service["name"] for service in values["services"]}
    assert set(budgets) == (names if values["podDisruptionBudget"]["enabled"] else set())


def declared_groups(service: dict[str, Any]) -> set[tuple[str, str]]:
    """(input stream, consumer group) of each processor the service runs, from its App."""
    return set(groups(load_app(service["app"]), tuple(service.get("only") or ())))


@pytest.mark.parametrize("release", RELEASES)
def test_autoscaled_services_scale_on_their_groups_lag(
    release: str, rendered: dict[str, Any]
) -> None:
    values = release_values(release)
    scaled = kinds(rendered[release], "ScaledObject")
    deployments = kinds(rendered[release], "Deployment")
    for service in values["services"]:
        autoscaling = service.get("autoscaling") or {}
        if not autoscaling.get("enabled"):
            assert service["name"] not in scaled
            continue
        spec = scaled[service["name"]]["spec"]
        assert spec["scaleTargetRef"]["name"] == deployments[service["name"]]["metadata"]["name"]
        assert "replicas" not in deployments[service["name"]]["spec"], "KEDA owns replicas"
        triggers = spec["triggers"]
        assert {t["type"] for t in triggers} == {"redis-streams"}
        groups = {(t["metadata"]["stream"], t["metadata"]["consumerGroup"]) for t in triggers}
        assert groups == declared_groups(service), "one trigger per processor it runs"
        for trigger in triggers:
            assert trigger["metadata"]["lagCount"] == str(autoscaling["lagPerReplica"])
            assert trigger["metadata"]["address"] == values["keda"]["address"]
        assert spec["minReplicaCount"] == autoscaling["minReplicas"]
        assert spec["maxReplicaCount"] == autoscaling["maxReplicas"]
    if release == "keda":
        assert scaled, "the keda example autoscales"


def with_change(release: str, change: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(json.dumps(release_values(release)))
    values.update(change)
    values["services"][0].update(service)
    return values


BAD_VALUES = {
    "SIGKILL before the drain ends": (
        {"terminationGracePeriodSeconds": 12},
        {},
        "must be at least grace (10) + 5 s",
    ),
    "no Secret for the Redis URL": (
        {"redis": {"existingSecret": "", "secretKey": "url"}},
        {},
        "redis.existingSecret",
    ),
    "the Redis URL in clear": ({}, {"settings": {"redis_url": "redis://x"}}, ""),
    "KEDA without an address": (
        {},
        {"autoscaling": {"enabled": True, "triggers": [{"stream": "s", "group": "g"}]}},
        "set keda.address",
    ),
    "KEDA without triggers": (
        {"keda": {"address": "redis:6379"}},
        {"autoscaling": {"enabled": True}},
        "autoscaling.triggers",
    ),
    "an unknown value": ({"replicaCount": 3}, {}, ""),
}


@pytest.mark.parametrize(("change", "service", "reason"), BAD_VALUES.values(), ids=BAD_VALUES)
def test_bad_values_stop_the_render(
    change: dict[str, Any],
    service: dict[str, Any],
    reason: str,
    helm_python: Path,
    tmp_path: Path,
) -> None:
    result = render(helm_python, with_change("default", change, service), "shop", tmp_path)
    assert result["errors"], "the render must fail"
    assert any(reason in error for error in result["errors"]), result["errors"]


def test_an_invalid_manifest_is_reported(helm_python: Path, tmp_path: Path) -> None:
    # the check itself: a misspelt field in a template is caught by the strict validation
    chart = tmp_path / "gristmill"
    shutil.copytree(CHART, chart)
    template = chart / "templates" / "pdb.yaml"
    template.write_text(template.read_text().replace("  maxUnavailable:", "  maxUnavaliable:"))
    result = render(helm_python, release_values("default"), "shop", tmp_path, chart=chart)
    assert result["errors"] == []
    assert result["invalid"]
    assert all("maxUnavaliable" in reason for reason in result["invalid"])


def test_examples_dir_has_no_stray_files() -> None:
    expected = {example.name for _, example in RELEASES.values()} | {
        override.name for override, _ in RELEASES.values() if override is not None
    }
    assert {path.name for path in EXAMPLES.glob("*.yaml")} == expected
