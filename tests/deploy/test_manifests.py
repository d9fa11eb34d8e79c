"""`runtime manifests`: one service's objects from its App, valid, and consistent with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from gristmill.cli import runtime
from gristmill.cli.manifests import Service, groups, service_manifests, to_yaml
from gristmill.cli.serve import load_app
from gristmill.errors import ConfigError
from tests.deploy.conftest import invalid_manifests
from tests.test_deploy_files import DRAIN_TAIL_S, load_yaml_documents

if TYPE_CHECKING:
    from pathlib import Path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(runtime, ["manifests", *args])
    return result.exit_code, result.stdout, result.stderr


def by_kind(objects: list[Any]) -> dict[str, Any]:
    return {obj["kind"]: obj for obj in objects}


def test_the_groups_are_the_apps_processors() -> None:
    app = load_app("services.orders:app")
    assert groups(app, ()) == [
        ("orders.placed", "orders.validate"),
        ("orders.valid", "orders.bill"),
    ]
    assert groups(app, ("bill",)) == [("orders.valid", "orders.bill")]


def test_the_command_prints_what_the_app_declares() -> None:
    code, stdout, stderr = run(
        "services.orders:app", "--only", "bill", "--keda-address", "redis:6379", "--grace", "25"
    )
    assert code == 0, stderr
    objects = by_kind(load_yaml_documents(stdout))
    assert set(objects) == {"Deployment", "PodDisruptionBudget", "ScaledObject"}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["services.orders:app", "--only", "bill"]
    env = {item["name"]: item for item in container["env"]}
    assert env["GRISTMILL_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "gristmill-redis",
        "key": "url",
    }
    assert env["GRISTMILL_GRACE"]["value"] == "25"
    assert pod["terminationGracePeriodSeconds"] >= 25 + DRAIN_TAIL_S
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port = int(env["GRISTMILL_HEALTH_PORT"]["value"])
    assert container["ports"][0]["containerPort"] == port
    assert "replicas" not in objects["Deployment"]["spec"], "KEDA owns the replica count"
    (trigger,) = objects["ScaledObject"]["spec"]["triggers"]
    assert trigger["type"] == "redis-streams"
    assert trigger["metadata"]["stream"] == "orders.valid"
    assert trigger["metadata"]["consumerGroup"] == "orders.bill"
    assert objects["ScaledObject"]["spec"]["scaleTargetRef"]["name"] == "orders"


def test_without_keda_the_replicas_are_fixed_and_the_budget_optional() -> None:
    code, stdout, _ = run("services.payments:app", "--replicas", "3", "--no-pdb")
    assert code == 0
    (deployment,) = load_yaml_documents(stdout)
    assert deployment["kind"] == "Deployment"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["name"] == "payments"


@pytest.mark.parametrize("target", ["services.orders:app", "services.payments:app"])
def test_the_objects_pass_strict_validation(target: str, helm_python: Path, tmp_path: Path) -> None:
    code, stdout, stderr = run(target, "--keda-address", "redis:6379")
    assert code == 0, stderr
    objects = load_yaml_documents(stdout)
    assert len(objects) == 3
    assert invalid_manifests(helm_python, objects, tmp_path) == []


def test_the_validation_catches_a_wrong_field(helm_python: Path, tmp_path: Path) -> None:
    app = load_app("services.orders:app")
    objects = service_manifests(app, Service("services.orders:app", "orders", "img"))
    objects[0]["spec"]["replica"] = 2
    assert invalid_manifests(helm_python, objects, tmp_path)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["services.orders:app", "--only", "nope"], "--only nope: no such processor"),
        (["services.orders:app", "--name", "Orders_1"], "is not a DNS label"),
        (["services.schemas:ORDERS"], "not a gristmill App"),
        (
            [
                "services.orders:app",
                "--keda-address",
                "r:6379",
                "--min-replicas",
                "5",
                "--max-replicas",
                "2",
            ],
            "--min-replicas",
        ),
    ],
)
def test_bad_input_is_one_error_and_a_fix(args: list[str], problem: str) -> None:
    code, stdout, stderr = run(*args)
    assert code == 2
    assert stdout == ""
    assert problem in stderr
    assert "error:" in stderr
    assert "fix:" in stderr
    assert "Traceback" not in stderr


def test_the_yaml_writer_round_trips() -> None:
    value = {"a": [{"b": 1, "c": [True, None]}, "x"], "d": {"e": "f: g"}, "h": []}
    assert load_yaml_documents(to_yaml(value)) == [value]


def test_scaling_bounds_are_checked() -> None:
    app = load_app("services.orders:app")
    service = Service("services.orders:app", "orders", "img", keda_address="r:6379")
    with pytest.raises(ConfigError, match="--min-replicas"):
        service_manifests(
            app, Service(**{**service.__dict__, "min_replicas": 3, "max_replicas": 1})
        )
