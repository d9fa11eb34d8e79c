"""What can be checked of the container deployment without Docker, helm or a network.

The Dockerfile's entry point, user and install line; that every service in the helm values is
an importable gristmill App whose settings the runtime accepts; that each pod's termination
grace outlasts the drain; that no secret sits in the values; and that the hand-rendered example
manifests in helm/examples agree with the values and the templates.

The project has no YAML library, so a strict reader for the block-style subset that the chart's
values and examples are written in lives here: anything outside it raises instead of being
misread.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from gristmill.app import App
from gristmill.cli import runtime
from gristmill.cli.serve import load_app
from gristmill.errors import ConfigError
from gristmill.settings import ENV_PREFIX, Settings, env_name, load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHART = ROOT / "helm" / "gristmill"
VALUES = CHART / "values.yaml"
DEPLOYMENT_TEMPLATE = CHART / "templates" / "deployment.yaml"
EXAMPLES = ROOT / "helm" / "examples"

# After `grace` the runtime cancels what still runs, then spends up to 2 s forgetting its
# consumer and closing connections (runtime.py); 5 s leaves room for that and the exit.
DRAIN_TAIL_S = 5.0

# A URL that carries credentials: scheme://user:password@ or scheme://:password@
CREDENTIALED_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@:'\"]*:[^\s/@'\"]+@", re.IGNORECASE)
SECRET_WORDS = re.compile(r"password|passwd|secret|token|credential", re.IGNORECASE)


# -- a strict reader for block-style YAML ----------------------------------------------------


@dataclass
class _Line:
    number: int
    indent: int
    text: str


def _strip_comment(raw: str) -> str:
    quote = ""
    for index, char in enumerate(raw):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or raw[index - 1] in " \t"):
            return raw[:index].rstrip()
    return raw.rstrip()


def _scalar(text: str, line: _Line) -> Any:
    if text in ("", "~", "null"):
        return None
    if text in ("{}", "[]"):
        return {} if text == "{}" else []
    if text[0] in "[{&*|>!%@`":
        raise ValueError(f"line {line.number}: outside the supported YAML subset: {text!r}")
    if text.startswith('"'):
        return json.loads(text)  # double-quoted YAML escapes are JSON's for our files
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'"):
            raise ValueError(f"line {line.number}: unterminated quote: {text!r}")
        return text[1:-1].replace("''", "'")
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?", text):
        return float(text)
    return text


def _block(lines: list[_Line], index: int, indent: int) -> tuple[Any, int]:
    if lines[index].text.startswith("-"):
        return _sequence(lines, index, indent)
    return _mapping(lines, index, indent)


def _sequence(lines: list[_Line], index: int, indent: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    while index < len(lines) and lines[index].indent == indent:
        line = lines[index]
        if not (line.text == "-" or line.text.startswith("- ")):
            break
        rest = line.text[1:].lstrip()
        if not rest:
            if index + 1 >= len(lines) or lines[index + 1].indent <= indent:
                raise ValueError(f"line {line.number}: empty sequence item")
            item, index = _block(lines, index + 1, lines[index + 1].indent)
        elif rest.startswith("- ") or _key_and_rest(rest) is not None:
            # "- key: value" opens a mapping whose further keys align with `key`
            column = indent + len(line.text) - len(rest)
            lines[index] = _Line(line.number, column, rest)
            item, index = _block(lines, index, column)
        else:
            item, index = _scalar(rest, line), index + 1
        items.append(item)
    return items, index


def _key_and_rest(text: str) -> tuple[str, str] | None:
    if text.startswith(("'", '"')):
        return None
    key, colon, rest = text.partition(": ")
    if colon:
        return key, rest.strip()
    return (text[:-1], "") if text.endswith(":") else None


def _mapping(lines: list[_Line], index: int, indent: int) -> tuple[dict[str, Any], int]:
    mapping: dict[str, Any] = {}
    while index < len(lines) and lines[index].indent == indent:
        line = lines[index]
        parsed = _key_and_rest(line.text)
        if parsed is None or line.text.startswith("- "):
            raise ValueError(f"line {line.number}: expected `key: value`, got {line.text!r}")
        key, rest = parsed
        if key in mapping:
            raise ValueError(f"line {line.number}: duplicate key {key!r}")
        index += 1
        following = lines[index] if index < len(lines) else None
        if rest:
            mapping[key] = _scalar(rest, line)
        elif following is not None and following.indent > indent:
            mapping[key], index = _block(lines, index, following.indent)
        elif following is not None and following.indent == indent and following.text[0] == "-":
            mapping[key], index = _sequence(lines, index, indent)  # "key:\n- item" style
        else:
            mapping[key] = None
    if index < len(lines) and lines[index].indent > indent:
        raise ValueError(f"line {lines[index].number}: unexpected indentation")
    return mapping, index


def load_yaml_documents(text: str) -> list[Any]:
    """The documents of `text`, which must stay within the block-style subset described above.

    Raises:
        ValueError: On anything outside the subset (flow collections with content, anchors,
            multi-line strings, tabs, bad indentation).
    """
    documents: list[list[_Line]] = [[]]
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.rstrip() == "---":
            documents.append([])
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError(f"line {number}: tab in indentation")
        content = _strip_comment(raw)
        if content.strip():
            indent = len(content) - len(content.lstrip(" "))
            documents[-1].append(_Line(number, indent, content.strip()))
    parsed: list[Any] = []
    for lines in documents:
        if not lines:
            continue
        value, end = _block(lines, 0, lines[0].indent)
        if end != len(lines):
            raise ValueError(f"line {lines[end].number}: unexpected content")
        parsed.append(value)
    return parsed


def test_the_yaml_reader_reads_what_the_chart_uses() -> None:
    text = (
        "a: 1  # comment\nb:\n  - name: x\n    args:\n      - '--only'\n  - plain\n"
        'c:\n  d: "q: #1"\n  e: {}\nf:\n- 2.5\n- true\n---\ng: null\n'
    )
    assert load_yaml_documents(text) == [
        {"a": 1, "b": [{"name": "x", "args": ["--only"]}, "plain"],
         "c": {"d": "q: #1", "e": {}}, "f": [2.5, True]},
        {"g": None},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "text", ["a: [1, 2]\n", "a: &anchor 1\n", "a: |\n  text\n", "a: 1\n   b: 2\n", "a: 1\na: 2\n"]
)
def test_the_yaml_reader_refuses_what_it_does_not_understand(text: str) -> None:
    with pytest.raises(ValueError, match="line"):
        load_yaml_documents(text)


# -- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), one list per build stage."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[tuple[str, str]]] = [[]]
    for instruction in logical:
        keyword, _, arguments = instruction.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), arguments.strip()))
    return stages


def final_stage(keyword: str) -> list[str]:
    """The arguments of every `keyword` instruction of the image's final stage."""
    return [arguments for kw, arguments in dockerfile_stages()[-1] if kw == keyword]


def test_the_image_enters_runtime_serve_in_exec_form() -> None:
    (entrypoint,) = final_stage("ENTRYPOINT")
    assert json.loads(entrypoint) == ["runtime", "serve"]  # exec form: runtime gets SIGTERM
    (cmd,) = final_stage("CMD")
    (target,) = json.loads(cmd)
    assert isinstance(load_app(target), App)


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    user = final_stage("USER")[-1]
    uid = user.partition(":")[0]
    assert uid.isdigit(), "Kubernetes verifies runAsNonRoot only for a numeric USER"
    assert int(uid) != 0


def test_the_image_installs_the_package_without_extras() -> None:
    runs = [
        arguments
        for stage in dockerfile_stages()
        for keyword, arguments in stage
        if keyword == "RUN" and "pip " in arguments
    ]
    wheels = [command for command in runs if "pip wheel" in command]
    assert wheels
    for command in wheels:
        assert command.split()[-1] == ".", f"wheels of the package itself, no extras: {command}"
        assert "--mount=type=secret,id=cabundle" in command  # the CA bundle never in a layer
    (install,) = [arguments for arguments in final_stage("RUN") if "pip install" in arguments]
    assert "--no-index" in install, "the runtime stage installs the built wheels only"
    assert re.search(r"pip install .* gristmill(\s|$)", install), install
    copied = " ".join(final_stage("COPY"))
    assert "services/" in copied
    assert "schemas/" in copied
    assert any("PYTHONUNBUFFERED=1" in env for env in final_stage("ENV"))
    assert final_stage("STOPSIGNAL") == ["SIGTERM"]


def test_the_image_bakes_in_no_setting_or_secret() -> None:
    for stage in dockerfile_stages():
        for keyword, arguments in stage:
            if keyword in ("ENV", "ARG", "LABEL"):
                assert ENV_PREFIX not in arguments, "settings come from the environment at run"
                assert not SECRET_WORDS.search(arguments), arguments
            assert not CREDENTIALED_URL.search(arguments), arguments


def test_the_build_context_is_an_allowlist() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "start from nothing, so .env and .venv never enter the context"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    assert allowed <= {"pyproject.toml", "README.md", "src", "services", "schemas"}


def test_probes_exist_only_with_a_health_command() -> None:
    # docs/deploy.md, "Health": probes exist because `runtime health` and the health port do;
    # the HEALTHCHECK and the chart's probes must go if the command ever goes.
    has_health_command = bool({"health", "healthcheck"} & set(runtime.commands))
    assert bool(final_stage("HEALTHCHECK")) == has_health_command
    assert ("livenessProbe" in DEPLOYMENT_TEMPLATE.read_text()) == has_health_command


def test_the_image_checks_health_through_the_health_server() -> None:
    # the health server's contract: GRISTMILL_HEALTH_PORT (8080 by default) and `runtime health`
    (healthcheck,) = final_stage("HEALTHCHECK")
    assert healthcheck.endswith('CMD ["runtime", "health", "--live"]'), healthcheck
    assert final_stage("EXPOSE") == ["8080"]


# -- the helm values --------------------------------------------------------------------------
# Each release is (values file over the chart's values.yaml, or None; its hand-rendered example).

RELEASES = {
    "default": (None, EXAMPLES / "default.yaml"),
    "split": (EXAMPLES / "split-values.yaml", EXAMPLES / "split.yaml"),
    "keda": (EXAMPLES / "keda-values.yaml", EXAMPLES / "keda.yaml"),
}


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's rule for `-f values`: mappings merge key by key; anything else is replaced."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def yaml_mapping(path: Path) -> dict[str, Any]:
    (document,) = load_yaml_documents(path.read_text())
    assert isinstance(document, dict), path
    return document


def release_values(release: str) -> dict[str, Any]:
    """The values a release renders with: the chart's, under the release's own file."""
    override, _ = RELEASES[release]
    values = yaml_mapping(VALUES)
    return merged(values, yaml_mapping(override)) if override else values


def release_services() -> list[tuple[str, dict[str, Any]]]:
    """(release, service) for every service of every release."""
    return [
        (release, service)
        for release in RELEASES
        for service in release_values(release)["services"]
    ]


def merged_settings(values: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    """What the template merges: the service's settings over the release-wide ones."""
    return {**(values.get("settings") or {}), **(service.get("settings") or {})}


def termination_grace(values: dict[str, Any], service: dict[str, Any]) -> Any:
    return service.get("terminationGracePeriodSeconds") or values["terminationGracePeriodSeconds"]


def env_value(value: Any) -> str:
    """How the template renders a setting: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


SERVICE_CASES = pytest.mark.parametrize(
    ("release", "service"),
    release_services(),
    ids=[f"{release}-{service.get('name')}" for release, service in release_services()],
)


@SERVICE_CASES
def test_each_service_serves_a_gristmill_app(release: str, service: dict[str, Any]) -> None:
    app = load_app(service["app"])
    assert isinstance(app, App)
    unknown = set(service.get("only") or ()) - set(app.processors) - set(app.tickers)
    assert not unknown, f"{service['name']}: `only` names no processor of {service['app']}"


@pytest.mark.parametrize("release", RELEASES)
def test_service_names_are_unique_dns_labels(release: str) -> None:
    names = [service["name"] for service in release_values(release)["services"]]
    assert names
    assert len(set(names)) == len(names)
    for name in names:
        # the Deployment is <release>-gristmill-<name>: 40 + 1 + 22 stays within 63
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", name), name


@SERVICE_CASES
def test_each_service_gets_settings_the_runtime_accepts(
    release: str, service: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    settings = merged_settings(release_values(release), service)
    assert "redis_url" not in settings, "the Redis URL comes from the Secret, never the values"
    for field, value in settings.items():
        assert field in Settings.model_fields, f"{field}: not a gristmill setting"
        monkeypatch.setenv(env_name(field), env_value(value))
    monkeypatch.setenv(env_name("redis_url"), "redis://redis.invalid:6379/0")  # the Secret's
    loaded = load_settings(_env_file=None)
    assert not loaded.embedded


@SERVICE_CASES
def test_termination_grace_outlasts_the_drain(release: str, service: dict[str, Any]) -> None:
    values = release_values(release)
    default_grace = Settings.model_fields["grace"].default
    grace = float(merged_settings(values, service).get("grace", default_grace))
    termination = termination_grace(values, service)
    assert isinstance(termination, int), "the pod spec takes whole seconds"
    assert termination >= grace + DRAIN_TAIL_S, (
        f"{service['name']}: SIGKILL after {termination} s would cut a {grace} s drain short"
    )


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, mapping) of every mapping in a parsed YAML tree."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for position, value in enumerate(node):
            yield from walk(value, f"{path}[{position}]")


def secrets_in(text: str) -> list[str]:
    """Where `text` (YAML, comments included) holds what looks like a secret in clear."""
    found = [
        f"line {text[: match.start()].count(chr(10)) + 1}"
        for match in CREDENTIALED_URL.finditer(text)
    ]
    for document in load_yaml_documents(text):
        for path, mapping in walk(document):
            for key, value in mapping.items():
                # a key that names a secret may only hold a reference to one (a Secret's name)
                reference = re.search(r"existingSecret|secretKey", key)
                if SECRET_WORDS.search(key) and not reference and type(value) in (str, int):
                    found.append(f"{path}.{key}")
                if key == "redis_url":
                    found.append(f"{path}.{key}")
            if mapping.get("name") == env_name("redis_url") and "value" in mapping:
                found.append(f"{path}.value")  # the URL in clear instead of a secretKeyRef
    return found


def test_the_secret_finder_finds_secrets() -> None:
    assert secrets_in("url: redis://svc:hunter2@redis:6379/0\n") == ["line 1"]
    assert secrets_in("# rediss://:hunter2@redis\na: 1\n") == ["line 1"]
    assert secrets_in("auth:\n  password: hunter2\n") == [".auth.password"]
    assert secrets_in("settings:\n  redis_url: x\n") == [".settings.redis_url"]
    clear = "env:\n  - name: GRISTMILL_REDIS_URL\n    value: redis://redis:6379/0\n"
    assert secrets_in(clear) == [".env[0].value"]
    assert secrets_in("redis:\n  existingSecret: gristmill-redis\n  secretKey: url\n") == []


@pytest.mark.parametrize(
    "path", [VALUES, *sorted(EXAMPLES.glob("*.yaml"))], ids=lambda path: path.name
)
def test_no_secret_in_values_or_examples(path: Path) -> None:
    assert secrets_in(path.read_text()) == []


@pytest.mark.parametrize("release", RELEASES)
def test_redis_is_only_a_reference_to_a_secret(release: str) -> None:
    assert set(release_values(release)["redis"]) == {"existingSecret", "secretKey"}


# -- the hand-rendered examples against the values and the template --------------------------


def example_objects(release: str, kind: str) -> dict[str, dict[str, Any]]:
    """The example's objects of `kind`, by the service they belong to."""
    _, example = RELEASES[release]
    documents = load_yaml_documents(example.read_text())
    objects = [document for document in documents if document["kind"] == kind]
    return {obj["metadata"]["labels"]["app.kubernetes.io/component"]: obj for obj in objects}


@pytest.mark.parametrize("release", RELEASES)
def test_the_example_renders_one_deployment_per_service(release: str) -> None:
    values = release_values(release)
    deployments = example_objects(release, "Deployment")
    assert set(deployments) == {service["name"] for service in values["services"]}
    for service in values["services"]:
        spec = deployments[service["name"]]["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        if (service.get("autoscaling") or {}).get("enabled"):
            assert "replicas" not in spec  # KEDA's ScaledObject sets them
        else:
            assert spec["replicas"] == service.get("replicas", 1)
        only = [arg for name in service.get("only") or () for arg in ("--only", name)]
        assert container["args"] == [service["app"], *only]
        tag = values["image"]["tag"] or yaml_mapping(CHART / "Chart.yaml")["appVersion"]
        assert container["image"] == f"{values['image']['repository']}:{tag}"
        assert pod["terminationGracePeriodSeconds"] == termination_grace(values, service)
        env = {item["name"]: item for item in container["env"]}
        secret_ref = env.pop(env_name("redis_url"))["valueFrom"]["secretKeyRef"]
        assert env.pop("GRISTMILL_HEALTH_PORT")["value"] == str(values["health"]["port"])
        assert secret_ref == {
            "name": values["redis"]["existingSecret"],
            "key": values["redis"]["secretKey"],
        }
        expected = {env_name(k): env_value(v) for k, v in merged_settings(values, service).items()}
        assert {name: item["value"] for name, item in env.items()} == expected
        assert container["resources"] == service.get("resources", values["resources"])


@pytest.mark.parametrize("release", RELEASES)
def test_the_example_pods_are_locked_down(release: str) -> None:
    for deployment in example_objects(release, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["enableServiceLinks"] is False  # no stray GRISTMILL_*_PORT variables
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], "protoc needs a writable /tmp"


@pytest.mark.parametrize("release", RELEASES)
def test_the_example_has_a_disruption_budget_per_service_if_enabled(release: str) -> None:
    values = release_values(release)
    budgets = example_objects(release, "PodDisruptionBudget")
    if values["podDisruptionBudget"]["enabled"]:
        assert set(budgets) == {service["name"] for service in values["services"]}
    else:
        assert not budgets


@pytest.mark.parametrize("release", RELEASES)
def test_the_template_still_says_what_the_example_shows(release: str) -> None:
    # without helm the examples are rendered by hand; these lines must appear in the template
    # and in every example, so an edit to one without the others fails here
    template = DEPLOYMENT_TEMPLATE.read_text()
    example = RELEASES[release][1].read_text()
    for line in (
        "automountServiceAccountToken: false",
        "enableServiceLinks: false",
        "runAsNonRoot: true",
        "runAsUser: 10001",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "mountPath: /tmp",
        "maxUnavailable: 0",
        "- name: GRISTMILL_REDIS_URL",
        "secretKeyRef:",
        "path: /livez",
        "path: /readyz",
    ):
        assert line in template, line
        assert line in example, line
    user = final_stage("USER")[-1].partition(":")[0]
    assert f"runAsUser: {user}" in template, "the pod's uid is the image's USER"


def test_an_app_target_that_is_no_app_is_refused() -> None:
    # what the import check above relies on: a target that is not an App is refused
    with pytest.raises(ConfigError, match="not a gristmill App"):
        load_app("services.schemas:ORDERS")
