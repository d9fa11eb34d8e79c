"""`runtime manifests module:app`: the Kubernetes objects for one service, without helm.

What the helm chart renders for one service, built from what the App declares: a Deployment
(the image's `runtime serve` with the app as argument, health probes, the Redis URL from a
Secret, a termination grace longer than the drain), a PodDisruptionBudget, and with
`--keda-address` a KEDA ScaledObject with one redis-streams trigger per processor, on its
consumer group's lag. The objects are plain data (`service_manifests`); the command prints
them as YAML.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from gristmill.cli.output import fail
from gristmill.cli.serve import load_app
from gristmill.errors import ConfigError
from gristmill.settings import Settings

if TYPE_CHECKING:
    from gristmill.app import App

DRAIN_TAIL_S = 5  # after `grace` the runtime takes up to ~2 s to forget its consumer and close
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
HEALTH_PORT_DEFAULT = 8080  # the health server's default port (GRISTMILL_HEALTH_PORT)


@dataclass(frozen=True)
class Service:
    """One Deployment's worth of choices; the rest comes from the App."""

    target: str
    name: str
    image: str
    replicas: int = 1
    only: tuple[str, ...] = ()
    secret: str = "gristmill-redis"
    secret_key: str = "url"
    grace: float = Settings.model_fields["grace"].default
    health_port: int = HEALTH_PORT_DEFAULT
    pdb: bool = True
    keda_address: str | None = None
    min_replicas: int = 1
    max_replicas: int = 10
    lag_per_replica: int = 1000
    labels: dict[str, str] = field(default_factory=dict)


def groups(app: App, only: tuple[str, ...]) -> list[tuple[str, str]]:
    """(input stream, consumer group) of every processor the service runs, in declared order."""
    chosen = [spec for name, spec in app.processors.items() if not only or name in only]
    return [(stream, spec.group) for spec in chosen for stream in spec.inputs]


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    probe: dict[str, Any] = {"httpGet": {"path": path, "port": "health"}}
    return {**probe, "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": failures}


def deployment(service: Service) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": "gristmill", "app.kubernetes.io/component": service.name}
    labels = {**selector, **service.labels}
    env: list[dict[str, Any]] = [
        {
            "name": "GRISTMILL_REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": service.secret, "key": service.secret_key}},
        },
        {"name": "GRISTMILL_HEALTH_PORT", "value": str(service.health_port)},
        {"name": "GRISTMILL_GRACE", "value": f"{service.grace:g}"},
    ]
    container = {
        "name": service.name,
        "image": service.image,
        "args": [service.target, *[arg for name in service.only for arg in ("--only", name)]],
        "env": env,
        "ports": [{"name": "health", "containerPort": service.health_port, "protocol": "TCP"}],
        "startupProbe": {**_probe("/livez", 2, 30), "timeoutSeconds": 1},
        "livenessProbe": _probe("/livez", 10, 3),
        "readinessProbe": _probe("/readyz", 5, 2),
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": int(service.grace) + DRAIN_TAIL_S + 15,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "runAsGroup": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            },
        },
    }
    if service.keda_address is None:  # with KEDA, the ScaledObject owns the replica count
        spec = {"replicas": service.replicas, **spec}
    return _object("apps/v1", "Deployment", service, labels, spec)


def disruption_budget(service: Service) -> dict[str, Any]:
    selector = {"app.kubernetes.io/name": "gristmill", "app.kubernetes.io/component": service.name}
    spec = {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    return _object("policy/v1", "PodDisruptionBudget", service, selector, spec)


def scaled_object(service: Service, streams: list[tuple[str, str]]) -> dict[str, Any]:
    triggers = [
        {
            "type": "redis-streams",
            "metadata": {
                "address": service.keda_address,
                "stream": stream,
                "consumerGroup": group,
                "lagCount": str(service.lag_per_replica),
            },
        }
        for stream, group in streams
    ]
    spec = {
        "scaleTargetRef": {"name": service.name},
        "minReplicaCount": service.min_replicas,
        "maxReplicaCount": service.max_replicas,
        "triggers": triggers,
    }
    labels = {"app.kubernetes.io/name": "gristmill", "app.kubernetes.io/component": service.name}
    return _object("keda.sh/v1alpha1", "ScaledObject", service, labels, spec)


def _object(
    api: str, kind: str, service: Service, labels: dict[str, str], spec: dict[str, Any]
) -> dict[str, Any]:
    metadata = {"name": service.name, "labels": labels}
    return {"apiVersion": api, "kind": kind, "metadata": metadata, "spec": spec}


def service_manifests(app: App, service: Service) -> list[dict[str, Any]]:
    """The objects for `service`, checked against the App.

    Raises:
        ConfigError: If a name, an `only` processor or a scaling bound is not usable.
    """
    if not DNS_LABEL.fullmatch(service.name):
        raise ConfigError(f"--name {service.name!r} is not a DNS label (a-z, 0-9, -)")
    unknown = sorted(set(service.only) - set(app.processors) - set(app.tickers))
    if unknown:
        raise ConfigError(f"--only {', '.join(unknown)}: no such processor in {service.target}")
    streams = groups(app, service.only)
    objects = [deployment(service)]
    if service.pdb:
        objects.append(disruption_budget(service))
    if service.keda_address is not None:
        if not streams:
            raise ConfigError(f"{service.target} runs no processor: nothing to scale on")
        if not 0 <= service.min_replicas <= service.max_replicas or service.max_replicas < 1:
            raise ConfigError("--min-replicas must be between 0 and --max-replicas (1 or more)")
        objects.append(scaled_object(service, streams))
    return objects


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML; every string double-quoted (JSON's quoting is valid YAML)."""
    pad = " " * indent
    lines: list[str] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        lead = f"{pad}{key}:" if isinstance(value, dict) else f"{pad}-"
        if isinstance(item, dict | list) and item:
            if isinstance(value, list) and isinstance(item, dict):
                nested = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {nested[indent + 2 :]}")
            else:
                lines.append(lead)
                lines.append(to_yaml(item, indent + 2))
        else:
            lines.append(f"{lead} {json.dumps(item)}")
    return "\n".join(lines)


@click.command()
@click.argument("target")
@click.option("--name", help="The Deployment's name (default: the app's name).")
@click.option("--image", default="gristmill:latest", show_default=True, help="The image.")
@click.option("--replicas", default=1, show_default=True, help="Replicas without KEDA.")
@click.option("--only", multiple=True, metavar="PROCESSOR", help="Run only these processors.")
@click.option("--secret", default="gristmill-redis", show_default=True, help="Secret: Redis URL.")
@click.option("--secret-key", default="url", show_default=True, help="Its key.")
@click.option("--grace", type=float, help="GRISTMILL_GRACE, seconds (default: the setting's).")
@click.option("--no-pdb", is_flag=True, help="Leave out the PodDisruptionBudget.")
@click.option("--keda-address", metavar="HOST:PORT", help="Add a KEDA ScaledObject on lag.")
@click.option("--min-replicas", default=1, show_default=True, help="KEDA's minimum (0: idle).")
@click.option("--max-replicas", default=10, show_default=True, help="KEDA's maximum.")
@click.option("--lag-per-replica", default=1000, show_default=True, help="KEDA's lagCount.")
def manifests(
    target: str,
    name: str | None,
    image: str,
    replicas: int,
    only: tuple[str, ...],
    secret: str,
    secret_key: str,
    grace: float | None,
    no_pdb: bool,
    keda_address: str | None,
    min_replicas: int,
    max_replicas: int,
    lag_per_replica: int,
) -> None:
    """Print the Deployment (and PodDisruptionBudget, KEDA ScaledObject) for TARGET."""
    try:
        app = load_app(target)
        health = Settings.model_fields.get("health_port")
        service = Service(
            target=target,
            name=name or app.name.replace("_", "-").lower(),
            image=image,
            replicas=replicas,
            only=only,
            secret=secret,
            secret_key=secret_key,
            grace=grace if grace is not None else Settings.model_fields["grace"].default,
            health_port=health.default if health is not None else HEALTH_PORT_DEFAULT,
            pdb=not no_pdb,
            keda_address=keda_address,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            lag_per_replica=lag_per_replica,
        )
        objects = service_manifests(app, service)
    except ConfigError as exc:
        fail(str(exc), "check the app path, --name and the processor names")
    click.echo("\n".join(f"---\n{to_yaml(obj)}" for obj in objects))
