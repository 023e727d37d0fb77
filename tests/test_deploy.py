"""Checks on deploy/: the Ray cluster launcher configs, the KubeRay manifests and the Dockerfile.

No cloud, cluster or docker engine is needed: the launcher configs are validated against the
JSON schema Ray ships (and Ray's own config checks), and the rest is read as data. What is
checked is what a broken deploy looks like in practice: a Ray version that differs from the
pin in pyproject.toml, a head that takes trials, no GPU workers, token authentication off, a
dashboard (whose Jobs API runs arbitrary commands) reachable from outside, credentials in a file.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = None

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
LAUNCHER_FILES = {"aws": DEPLOY / "cluster" / "aws.yaml", "gcp": DEPLOY / "cluster" / "gcp.yaml"}
RAYCLUSTER_FILE = DEPLOY / "k8s" / "raycluster.yaml"
RAYJOB_FILE = DEPLOY / "k8s" / "rayjob.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
README = DEPLOY / "README.md"

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DASHBOARD_PORT = 8265
# `dashboard-host: 0.0.0.0`, `--dashboard-host=0.0.0.0`, `dashboard_host="::"` and the like.
ALL_INTERFACES_DASHBOARD = re.compile(
    r"dashboard[-_]host[\"']?\s*[:=]?\s*[\"']?\s*(0\.0\.0\.0|::|\[::\])(?![\w.:])"
)


# ---------------------------------------------------------------------------------------------
# helpers


def ray_pin() -> str:
    """The X of the ``ray[default]==X`` dependency in pyproject.toml."""
    text = (REPO / "pyproject.toml").read_text()
    if tomllib is not None:
        deps = tomllib.loads(text)["project"]["dependencies"]
    else:  # pragma: no cover - Python 3.10: the dependency strings, quoted, one a line
        deps = re.findall(r"^\s*\"([^\"]+)\",?\s*$", text, flags=re.MULTILINE)
    pins = []
    for dep in deps:
        match = re.fullmatch(r"ray\[([^\]]*)\]\s*==\s*([0-9][0-9A-Za-z.+-]*)", dep.strip())
        if match and "default" in [e.strip() for e in match.group(1).split(",")]:
            pins.append(match.group(2))
    assert len(pins) == 1, f"expected exactly one ray[default]==X dependency, found {pins}"
    return pins[0]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_docs(path: Path) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no YAML documents"
    assert all(isinstance(d, dict) for d in docs), f"{path}: every document must be a mapping"
    return docs


def the_doc(path: Path, kind: str) -> dict:
    found = [d for d in load_docs(path) if d.get("kind") == kind]
    assert len(found) == 1, f"{path}: expected one {kind}, found {len(found)}"
    return found[0]


def ray_schema() -> dict:
    spec = importlib.util.find_spec("ray")
    assert spec is not None and spec.submodule_search_locations, "ray is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "autoscaler" / "ray-schema.json"
    assert path.is_file(), f"Ray's cluster config schema is missing: {path}"
    return json.loads(path.read_text())


def start_command(config: dict, key: str) -> str:
    """The one `ray start` command of head_start_ray_commands/worker_start_ray_commands."""
    commands = [c for c in config[key] if re.search(r"\bray start\b", c)]
    assert len(commands) == 1, f"{key}: expected one `ray start` command, got {commands}"
    return " ".join(commands[0].split())


def flag_value(command: str, flag: str) -> str | None:
    match = re.search(rf"{re.escape(flag)}(?:=|\s+)(\S+)", command)
    return match.group(1).strip("'\"") if match else None


def head_type(config: dict) -> dict:
    return config["available_node_types"][config["head_node_type"]]


def worker_types(config: dict) -> dict[str, dict]:
    return {
        name: node
        for name, node in config["available_node_types"].items()
        if name != config["head_node_type"]
    }


def has_gpu_hardware(provider: str, node_config: dict) -> bool:
    if provider == "aws":
        # G and P instance families carry NVIDIA GPUs (g5.xlarge: one A10G).
        return re.match(r"^[gp]\d", node_config.get("InstanceType", "")) is not None
    if provider == "gcp":
        accelerators = node_config.get("guestAccelerators") or []
        if any(
            a.get("acceleratorType", "").startswith("nvidia-") and a.get("acceleratorCount", 0) >= 1
            for a in accelerators
        ):
            return True
        # A2/A3/G2 machine types come with their GPUs attached.
        return re.match(r"^(a2|a3|g2)-", node_config.get("machineType", "")) is not None
    raise AssertionError(f"unknown provider {provider}")


def raycluster_specs() -> dict[str, dict]:
    """The RayCluster spec of raycluster.yaml and the one embedded in rayjob.yaml."""
    return {
        "raycluster.yaml": the_doc(RAYCLUSTER_FILE, "RayCluster")["spec"],
        "rayjob.yaml": the_doc(RAYJOB_FILE, "RayJob")["spec"]["rayClusterSpec"],
    }


def pod_templates(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"]["template"]] + [
        group["template"] for group in spec.get("workerGroupSpecs", [])
    ]


def containers(spec: dict) -> list[dict]:
    return [c for t in pod_templates(spec) for c in t["spec"]["containers"]]


def quantity(value: Any) -> float:
    return float(str(value))


def deploy_files() -> list[Path]:
    files = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
    assert files, "deploy/ is empty"
    return files


# ---------------------------------------------------------------------------------------------
# the pin itself


def test_pyproject_pins_ray_default():
    version = ray_pin()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version


# ---------------------------------------------------------------------------------------------
# Ray cluster launcher configs


@pytest.mark.parametrize("provider", sorted(LAUNCHER_FILES))
def test_launcher_config_matches_rays_json_schema(provider):
    config = load_yaml(LAUNCHER_FILES[provider])
    jsonschema.validate(config, ray_schema())
    assert config["provider"]["type"] == provider


@pytest.mark.parametrize("provider", sorted(LAUNCHER_FILES))
def test_launcher_config_passes_rays_own_checks(provider):
    # What `ray up` does before touching the cloud: fill in the provider's defaults, merge the
    # setup commands, validate again (schema plus cross-field checks such as head_node_type).
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load_yaml(LAUNCHER_FILES[provider])
    validate_config(config)
    prepared = prepare_config(config)
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("provider", sorted(LAUNCHER_FILES))
def test_launcher_head_takes_no_trials(provider):
    config = load_yaml(LAUNCHER_FILES[provider])
    # The autoscaler starts the head with these resources (RAY_OVERRIDE_RESOURCES) ...
    assert head_type(config)["resources"].get("CPU") == 0
    assert "GPU" not in head_type(config)["resources"]
    # ... and the start command says so too, should the override ever not apply.
    assert flag_value(start_command(config, "head_start_ray_commands"), "--num-cpus") == "0"


@pytest.mark.parametrize("provider", sorted(LAUNCHER_FILES))
def test_launcher_has_a_gpu_worker_type(provider):
    config = load_yaml(LAUNCHER_FILES[provider])
    gpu_types = [
        name
        for name, node in worker_types(config).items()
        if node["resources"].get("GPU", 0) >= 1 and has_gpu_hardware(provider, node["node_config"])
    ]
    assert gpu_types, f"{provider}: no worker type with GPU hardware and a GPU resource"
    for name in gpu_types:
        assert worker_types(config)[name].get("max_workers", 0) >= 1, name


def test_gcp_gpu_workers_can_be_created():
    # The Compute API refuses GPU VMs that may live-migrate, and takes `scheduling` as one
    # object (ray-project/ray#46248: a list, as in some Ray examples, is not that).
    config = load_yaml(LAUNCHER_FILES["gcp"])
    for name, node in worker_types(config).items():
        node_config = node["node_config"]
        if has_gpu_hardware("gcp", node_config):
            assert isinstance(node_config.get("scheduling"), dict), name
            assert node_config["scheduling"].get("onHostMaintenance") == "TERMINATE", name
            items = node_config.get("metadata", {}).get("items", [])
            assert {"key": "install-nvidia-driver", "value": "True"} in items, name


@pytest.mark.parametrize("provider", sorted(LAUNCHER_FILES))
def test_launcher_runs_the_pinned_ray_and_installs_sweep(provider):
    version = ray_pin()
    config = load_yaml(LAUNCHER_FILES[provider])
    image = config["docker"]["image"]
    repository, _, tag = image.partition(":")
    assert repository == "rayproject/ray", image
    assert tag.startswith(f"{version}-"), f"{image} is not Ray {version}"
    for node in config["available_node_types"].values():
        assert "worker_image" not in node.get("docker", {}), "one image for every node"

    setup = "\n".join(config["setup_commands"])
    pins = re.findall(r"ray\[default\]==([0-9][\w.+-]*)", setup)
    assert pins == [version], f"setup_commands pin {pins}, pyproject pins {version}"
    # pip-installing the package by URL is not possible: the repo is mounted and installed.
    assert config["file_mounts"].get("~/sweep") == "."
    assert re.search(r"pip install\b.*-e ~/sweep\b", setup), setup


@pytest.mark.parametrize("provider", sorted(LAUNCHER_FILES))
def test_launcher_enables_token_auth_everywhere(provider):
    config = load_yaml(LAUNCHER_FILES[provider])
    # The same token on every node, copied from the laptop; never the token itself in the file.
    assert config["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    run_options = " ".join(config["docker"]["run_options"])
    assert re.search(r"(--env|-e)[ =]RAY_AUTH_MODE=token\b", run_options), run_options
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert "RAY_AUTH_MODE=token" in start_command(config, key), key
    assert "RAY_AUTH_TOKEN=" not in LAUNCHER_FILES[provider].read_text()


@pytest.mark.parametrize("provider", sorted(LAUNCHER_FILES))
def test_launcher_dashboard_listens_on_loopback_only(provider):
    config = load_yaml(LAUNCHER_FILES[provider])
    head = start_command(config, "head_start_ray_commands")
    assert flag_value(head, "--dashboard-host") in LOOPBACK, head
    assert flag_value(head, "--dashboard-port") in (None, str(DASHBOARD_PORT)), head
    assert "--dashboard-host" not in start_command(config, "worker_start_ray_commands")


# ---------------------------------------------------------------------------------------------
# KubeRay manifests


@pytest.mark.parametrize(
    ("path", "kind"), [(RAYCLUSTER_FILE, "RayCluster"), (RAYJOB_FILE, "RayJob")]
)
def test_kuberay_manifest_parses_with_required_fields(path, kind):
    resource = the_doc(path, kind)
    assert resource["apiVersion"] == "ray.io/v1"
    assert resource["metadata"]["name"]
    spec = resource["spec"] if kind == "RayCluster" else resource["spec"]["rayClusterSpec"]
    assert spec["headGroupSpec"]["template"]["spec"]["containers"]
    assert spec["workerGroupSpecs"]
    for doc in load_docs(path):
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name")


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_kuberay_cluster_runs_the_pinned_ray(name):
    version = ray_pin()
    spec = raycluster_specs()[name]
    assert str(spec["rayVersion"]) == version
    for container in containers(spec):
        # Images are built from deploy/Dockerfile, tagged with the Ray version they carry.
        assert f"ray{version}" in container["image"], container["image"]


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_kuberay_head_takes_no_trials(name):
    spec = raycluster_specs()[name]
    params = spec["headGroupSpec"]["rayStartParams"]
    assert params["num-cpus"] == "0"
    # rayStartParams is a map of strings in the CRD: a bare YAML number is rejected.
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        for key, value in group["rayStartParams"].items():
            assert isinstance(value, str), f"rayStartParams.{key} must be a string, not {value!r}"
    head_limits = spec["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert "nvidia.com/gpu" not in head_limits


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_kuberay_has_a_gpu_worker_group(name):
    spec = raycluster_specs()[name]
    gpu_groups = [
        group
        for group in spec["workerGroupSpecs"]
        if any(
            quantity(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) >= 1
            for c in group["template"]["spec"]["containers"]
        )
    ]
    assert gpu_groups, f"{name}: no worker group with an nvidia.com/gpu limit"
    for group in gpu_groups:
        assert group["maxReplicas"] >= 1
        assert group["minReplicas"] <= group["maxReplicas"]


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_kuberay_token_auth_is_on(name):
    spec = raycluster_specs()[name]
    # KubeRay >= v1.5.1: the operator generates the token Secret and sets RAY_AUTH_MODE and
    # RAY_AUTH_TOKEN on every Ray container; it refuses the option below Ray 2.52.0.
    assert spec["authOptions"]["mode"] == "token"
    major, minor = (int(x) for x in str(spec["rayVersion"]).split(".")[:2])
    assert (major, minor) >= (2, 52)


def test_raycluster_dashboard_listens_on_loopback_only():
    spec = raycluster_specs()["raycluster.yaml"]
    assert spec["headGroupSpec"]["rayStartParams"]["dashboard-host"] in LOOPBACK


def test_rayjob_runs_sweep_and_cleans_up():
    job = the_doc(RAYJOB_FILE, "RayJob")["spec"]
    entrypoint = job["entrypoint"]
    assert entrypoint.split()[:2] == ["sweep", "run"], entrypoint
    results = flag_value(entrypoint, "--results")
    assert results and re.match(r"^(s3|gs|gcs|abfs|hdfs)://", results), entrypoint
    assert job["shutdownAfterJobFinishes"] is True
    assert isinstance(job["ttlSecondsAfterFinished"], int)
    assert job["ttlSecondsAfterFinished"] >= 0
    if job.get("submissionMode") == "SidecarMode":
        # KubeRay's validation for SidecarMode.
        assert "submitterPodTemplate" not in job and "submitterConfig" not in job
        head_pod = job["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
        assert head_pod.get("restartPolicy", "Never") == "Never"


def test_rayjob_dashboard_stays_inside_the_kubernetes_network():
    """The one deploy file where the dashboard may listen beyond loopback, and why it's safe.

    The KubeRay operator polls a RayJob's status through the head Service, so the RayJob's
    dashboard must listen on the pod network. That is only acceptable with token auth (checked
    above), a ClusterIP Service, no Ingress, and a NetworkPolicy that lets in only the job's own
    Ray pods and, on the dashboard port alone, other in-cluster pods (the operator).
    """
    spec = raycluster_specs()["rayjob.yaml"]
    head = spec["headGroupSpec"]
    if head["rayStartParams"].get("dashboard-host", "0.0.0.0") in LOOPBACK:
        return
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    assert head.get("enableIngress", False) is False

    head_labels = {**head["template"]["metadata"]["labels"], "ray.io/node-type": "head"}
    policies = [
        doc
        for doc in load_docs(RAYJOB_FILE)
        if doc["kind"] == "NetworkPolicy"
        and doc["apiVersion"] == "networking.k8s.io/v1"
        and doc["spec"]["podSelector"]["matchLabels"].items() <= head_labels.items()
    ]
    assert policies, "no NetworkPolicy selects the RayJob's head pod"
    for policy in policies:
        assert "Ingress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            assert peers, "an ingress rule without `from` admits every source"
            for peer in peers:
                assert "ipBlock" not in peer, "admit pods by label, not address ranges"
                assert peer.get("podSelector", {}).get("matchLabels"), peer
                if "namespaceSelector" in peer:
                    # Pods of another namespace (the operator): the dashboard port only.
                    assert [p["port"] for p in rule.get("ports", [])] == [DASHBOARD_PORT], rule
                else:
                    # Pods of this namespace: this job's own Ray pods only.
                    selector = peer["podSelector"]["matchLabels"].items()
                    for template in pod_templates(spec):
                        assert selector <= template["metadata"]["labels"].items(), template


def test_kubernetes_manifests_never_publish_ray():
    for path in (RAYCLUSTER_FILE, RAYJOB_FILE):
        for doc in load_docs(path):
            assert doc["kind"] not in ("Ingress", "Route", "Gateway"), path
            if doc["kind"] == "Service":
                assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", path
    for name, spec in raycluster_specs().items():
        head = spec["headGroupSpec"]
        assert head.get("serviceType", "ClusterIP") == "ClusterIP", name
        assert head.get("enableIngress", False) is False, name


def test_kubernetes_pods_use_a_declared_service_account():
    for path, spec in zip((RAYCLUSTER_FILE, RAYJOB_FILE), raycluster_specs().values()):
        accounts = {d["metadata"]["name"] for d in load_docs(path) if d["kind"] == "ServiceAccount"}
        for template in pod_templates(spec):
            assert template["spec"].get("serviceAccountName") in accounts, path


def test_no_credentials_in_manifests():
    secretish = re.compile(r"TOKEN|SECRET|PASSWORD|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)
    for spec in raycluster_specs().values():
        for container in containers(spec):
            for env in container.get("env", []):
                if secretish.search(env["name"]):
                    assert "value" not in env, f"{env['name']} must come from a Secret"
    for path in deploy_files():
        text = path.read_text()
        assert not re.search(r"AKIA[0-9A-Z]{16}", text), f"{path}: an AWS access key id"
        assert not re.search(r"aws_secret_access_key\s*[:=]\s*\S", text, re.I), path


# ---------------------------------------------------------------------------------------------
# Dockerfile


DOCKER_ARG = re.compile(r"ARG\s+(\w+)(?:=(.*))?")
DOCKER_FROM = re.compile(r"FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+\w+)?", re.IGNORECASE)
DOCKER_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def dockerfile_base_image() -> str:
    """The FROM image of deploy/Dockerfile, with the ARG defaults declared before it."""
    args: dict[str, str] = {}
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if match := DOCKER_ARG.fullmatch(line):
            args[match.group(1)] = (match.group(2) or "").strip().strip("\"'")
        elif match := DOCKER_FROM.fullmatch(line):
            return DOCKER_VAR.sub(lambda m: args[m.group(1) or m.group(2)], match.group(1))
    raise AssertionError("deploy/Dockerfile has no FROM")


def test_dockerfile_base_is_the_pinned_ray():
    version = ray_pin()
    image = dockerfile_base_image()
    repository, _, tag = image.partition(":")
    assert repository == "rayproject/ray", image
    assert tag.startswith(f"{version}-py"), f"{image} is not Ray {version}"


def test_dockerfile_installs_the_package_and_the_jobs():
    text = DOCKERFILE.read_text()
    assert re.search(r"^RUN pip install --no-cache-dir\b.*\s\.(\s|$)", text, re.MULTILINE), text
    assert re.search(r"^COPY\b.*\s\.\s", text, re.MULTILINE), "the repository must be copied"
    assert re.search(r"^ENV PYTHONPATH=/home/ray/sweep\b", text, re.MULTILINE)
    # The build context is the repository root: jobs/ must not be ignored.
    ignore = DEPLOY / "Dockerfile.dockerignore"
    ignored = [line.strip() for line in ignore.read_text().splitlines() if line.strip()]
    assert not {"jobs", "sweep", "pyproject.toml", "README.md"} & set(ignored)


# ---------------------------------------------------------------------------------------------
# all deploy files, and the runbook


def test_no_deploy_file_binds_the_dashboard_to_all_interfaces():
    # rayjob.yaml is the one exception, and test_rayjob_dashboard_stays_inside_... checks it.
    offenders = [
        f"{path.relative_to(REPO)}: {match.group(0)}"
        for path in deploy_files()
        if path != RAYJOB_FILE
        for match in ALL_INTERFACES_DASHBOARD.finditer(path.read_text())
    ]
    assert not offenders, offenders


def test_all_interfaces_pattern_catches_the_usual_spellings():
    for text in (
        "--dashboard-host=0.0.0.0",
        "--dashboard-host 0.0.0.0",
        'dashboard-host: "0.0.0.0"',
        "dashboard_host='::'",
    ):
        assert ALL_INTERFACES_DASHBOARD.search(text), text
    for text in ("--dashboard-host=127.0.0.1", "dashboard-host: '0.0.0.00'", "0.0.0.0/0"):
        assert not ALL_INTERFACES_DASHBOARD.search(text), text


def test_every_ray_image_in_deploy_is_the_pinned_version():
    version = ray_pin()
    tags = [
        (path, tag)
        for path in deploy_files()
        for tag in re.findall(r"rayproject/ray(?:-ml)?:([\w.${}-]+)", path.read_text())
    ]
    assert tags
    for path, tag in tags:
        if "$" not in tag:  # the Dockerfile's ARG-built tag is checked above
            assert tag.startswith(f"{version}-") or tag == version, f"{path}: {tag}"


def test_readme_is_a_runbook_for_these_files():
    text = README.read_text()
    for path in re.findall(r"deploy/[\w./-]+\.(?:yaml|md)|deploy/Dockerfile\b", text):
        assert (REPO / path).exists(), f"README.md refers to a missing file: {path}"
    for needed in (
        "deploy/cluster/aws.yaml",
        "deploy/k8s/rayjob.yaml",
        "RAY_AUTH_MODE=token",
        "RAY_AUTH_TOKEN",
        "ray get-auth-token",
        "ray job stop",
        "ray job logs",
        "kubectl port-forward",
        "sweep submit",
        "--address auto",
        "6379",
        "8265",
        "10001",
    ):
        assert needed in text, f"README.md does not mention {needed}"
