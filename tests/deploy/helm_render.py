"""Render the chart with Helm's own engine, then validate every manifest; run by Python >= 3.12.

    .venv/helm/bin/python tests/deploy/helm_render.py CHART VALUES.json RELEASE > result.json
    .venv/helm/bin/python tests/deploy/helm_render.py --validate MANIFESTS.json

helm-sdkpy (Helm's Go library, linked into a wheel) has `lint`, which renders every template
with the chart's values, checks the values against values.schema.json and parses what each
template renders, but it does not return the manifests. So this lints a copy of the chart whose
values.yaml is VALUES, with one extra template that renders each real template again through
`tpl` (the same engine, the same named templates, the release name given here) and hands the
result out through `fail`. In lint mode Helm logs a `fail` or `required` instead of stopping;
those log lines are read back from stderr: the dump becomes the manifests, any other is an
error, as it would stop `helm template`.

Then each manifest is validated: built-in kinds with `kubernetes-validate --strict` for
Kubernetes KUBERNETES_VERSION, KEDA's ScaledObject by a round trip through KEDA's typed models
(a field they do not know is dropped by them, and so reported here).

Prints JSON: {"helm": version, "lint": [messages], "errors": [...], "manifests": [...],
"invalid": [...], "text": the rendered YAML}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import helm_sdkpy
import jsonschema
import kubernetes_validate
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject

KUBERNETES_VERSION = "1.37.0"
BEGIN, END = "<<<gristmill-render:", ":gristmill-render>>>"
RENDER_DIR = "__render__"
DUMP_TEMPLATE = """\
{{- $release := dict "Name" %(release)s "Namespace" "default" "Service" "Helm" \
"IsInstall" true "IsUpgrade" false "Revision" 1 }}
{{- $ctx := dict "Values" .Values "Chart" .Chart "Capabilities" .Capabilities \
"Template" .Template "Files" .Files "Release" $release }}
{{- $out := list }}
{{- range $path, $_ := .Files.Glob "%(dir)s/*.yaml" }}
{{- $out = append $out (printf "# Source: gristmill/templates/%%s\\n%%s" (base $path) \
(tpl ($.Files.Get $path) $ctx)) }}
{{- end }}
{{- fail (printf "%%s%%s%%s" %(begin)s (join "\\n" $out) %(end)s) }}
"""
LOGGED = re.compile(r'funcMap (?P<func>\w+)[^\n]*?(?:message|msg)=(?P<text>"(?:[^"\\]|\\.)*")')
SEVERITY = {1: "info", 2: "warning", 3: "error"}


def go_unquote(text: str) -> str:
    """A Go-quoted string (strconv.Quote) as it was; JSON's escapes plus \\xNN."""
    return str(json.loads(re.sub(r"\\x([0-9a-fA-F]{2})", r"\\u00\1", text)))


def stage_chart(chart: Path, values: dict[str, Any], release: str, into: Path) -> Path:
    staged = into / chart.name
    shutil.copytree(chart, staged)
    (staged / "values.yaml").write_text(json.dumps(values))  # JSON is YAML
    (staged / RENDER_DIR).mkdir()
    for template in sorted((staged / "templates").glob("*.yaml")):
        shutil.copy(template, staged / RENDER_DIR / template.name)
    (staged / "templates" / "zz-render-dump.yaml").write_text(
        DUMP_TEMPLATE
        % {
            "release": json.dumps(release),
            "dir": RENDER_DIR,
            "begin": json.dumps(BEGIN),
            "end": json.dumps(END),
        }
    )
    return staged


def lint_capturing_stderr(staged: Path) -> tuple[dict[str, Any], str]:
    """Helm's lint of `staged`, and what the Go library logged to fd 2 meanwhile."""
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            result = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(staged)))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        return result, log.read().decode(errors="replace")


def validate(manifest: dict[str, Any]) -> str | None:
    """Why `manifest` is invalid, or None."""
    if str(manifest.get("apiVersion", "")).startswith("keda.sh/"):
        try:
            parsed = ScaledObject.model_validate(manifest)
        except ValueError as exc:
            return str(exc)
        kept = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
        if kept != manifest:
            return f"fields KEDA's schema does not have: {json.dumps(manifest)} -> {kept}"
        return None
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
        return str(exc)
    return None


def schema_errors(chart: Path, values: dict[str, Any]) -> list[str]:
    """values.schema.json's complaints, readable (Helm checks the same, its text is lost)."""
    schema_file = chart / "values.schema.json"
    if not schema_file.is_file():
        return []
    validator = jsonschema.Draft7Validator(json.loads(schema_file.read_text()))
    return [
        f"values.schema.json: {'.'.join(map(str, error.absolute_path)) or '.'}: {error.message}"
        for error in validator.iter_errors(values)
    ]


def render(chart: Path, values: dict[str, Any], release: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        staged = stage_chart(chart, values, release, Path(scratch))
        try:
            result, logged = lint_capturing_stderr(staged)
        except helm_sdkpy.HelmError as exc:
            return {"lint": [], "errors": [str(exc)], "manifests": [], "invalid": [], "text": ""}
    lint = [
        {"severity": SEVERITY.get(message["Severity"], message["Severity"]), **message}
        for message in result.get("Messages") or []
    ]
    # helm-sdkpy passes a lint error's Go error as {}: its text is lost, its place is not
    errors = [f"lint: {error or 'an error'}" for error in result.get("Errors") or []]
    errors += [f"{m['Path']}: {m['Err'] or 'an error'}" for m in lint if m["severity"] == "error"]
    if errors:
        errors += schema_errors(chart, values)
    manifests: list[dict[str, Any]] = []
    rendered = []
    dumped = False
    for match in LOGGED.finditer(logged):
        text = go_unquote(match["text"])
        if text.startswith(BEGIN) and text.endswith(END):
            dumped = True
            body = text[len(BEGIN) : -len(END)]
            rendered.append(body)
            manifests += [doc for doc in yaml.safe_load_all(body) if doc is not None]
        else:
            errors.append(f"{match['func']}: {text}")
    if not dumped and not errors:
        errors.append(f"no rendered manifests in Helm's log:\n{logged[-2000:]}")
    invalid = []
    for manifest in manifests:
        reason = validate(manifest)
        if reason is not None:
            name = manifest.get("metadata", {}).get("name")
            invalid.append(f"{manifest.get('kind')} {name}: {reason}")
    return {
        "lint": lint,
        "errors": errors,
        "manifests": manifests,
        "invalid": invalid,
        "text": "".join(rendered),
    }


def main() -> None:
    if sys.argv[1] == "--validate":  # helm_render.py --validate MANIFESTS.json
        manifests = json.loads(Path(sys.argv[2]).read_text())
        invalid = [f"{m.get('kind')}: {why}" for m in manifests if (why := validate(m))]
        sys.stdout.write(json.dumps({"invalid": invalid}))
        return
    chart, values_file, release = sys.argv[1:4]
    values = json.loads(Path(values_file).read_text())
    with contextlib.redirect_stdout(sys.stderr):  # only the result goes to stdout
        result = render(Path(chart), values, release)
    result["helm"] = helm_sdkpy.get_version()
    sys.stdout.write(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
