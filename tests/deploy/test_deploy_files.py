"""The deployment files in deploy/ hang together: docker compose, the image, the OpenTelemetry
Collector config, the Kubernetes manifests and the ClickHouse cluster DDL.

No container engine or cluster runs here, so each file is checked against what it
refers to: services, ports, mounted files, environment variables, the real CLI parser,
the collector's real HTTP endpoints and its default ports. The manifests are validated
strictly against the official Kubernetes schemas (kubernetes-validate); `docker compose
config` and `kubectl kustomize` run too when those tools are installed.
"""

import copy
import re
import shutil
import subprocess
import tomllib
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.scoring.test_ci_workflow import _commands
from tracescore.collector.config import CollectorConfig
from tracescore.collector.http_receiver import HttpReceiver
from tracescore.collector.pipeline import IngestPipeline
from tracescore.collector.store.clickhouse_store import parse_clickhouse_url
from tracescore.schemas.errors import ConfigError
from tracescore.scoring.cli import EXIT_OK, _parser, main
from tracescore.scoring.scoring_config import load_scoring_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
OUR_IMAGE = "tracescore"
CLUSTER = "tracescore"
CLUSTER_DDL_ARGS = [
    "db", "init", "--cluster", CLUSTER, "--print", "--store", "clickhouse://localhost:8123/otel"
]  # fmt: skip
DEFAULTS = CollectorConfig()

# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`; `$$` is a literal `$`.
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)")


def _parse(args: list[str], where: str) -> Any:
    try:
        return _parser().parse_args(args)
    except ConfigError as exc:  # the CLI's parser raises instead of exiting
        pytest.fail(f"{where}: `tracescore {' '.join(args)}` does not parse: {exc}")


# -- docker compose ---------------------------------------------------------------------


def _interpolate(value: Any, missing: list[str]) -> Any:
    """``value`` with compose variables replaced by their defaults (none is set here)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, missing) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        if match.group(2) in (":-", "-"):
            return match.group(3)
        missing.append(name)
        return ""

    return _VARIABLE.sub(replace, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    missing: list[str] = []
    resolved = _interpolate(loaded, missing)
    assert not missing, f"variables without a default in {COMPOSE.name}: {missing}"
    assert isinstance(resolved, dict)
    return resolved


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in _services(compose).items()
        if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }


def _ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host, container) pairs of a service's published ports."""
    pairs = []
    for entry in service.get("ports", []):
        host, _, container = str(entry).rpartition(":")
        pairs.append((int(host), int(container)))
    return pairs


def test_compose_has_the_expected_services(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert set(services) == {
        "clickhouse",
        "tracescore-db-init",
        "tracescore-collector",
        "tracescore-watch",
        "grafana",
        "otel-collector",
    }
    assert set(_ours(compose)) == {
        "tracescore-db-init",
        "tracescore-collector",
        "tracescore-watch",
    }
    images = {name: s.get("image", "") for name, s in services.items()}
    assert images["clickhouse"].startswith("clickhouse/clickhouse-server:")
    assert images["grafana"].startswith("grafana/grafana:")
    assert images["otel-collector"].startswith("otel/opentelemetry-collector-contrib:")


def test_every_service_has_an_image_or_a_buildable_context(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT, name
            assert (context / service["build"]["dockerfile"]).is_file(), name


def test_dependencies_exist_and_their_conditions_can_be_met(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        for target, condition in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            state = condition["condition"]
            if state == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            elif state == "service_completed_successfully":
                # A one-shot job: restarting it would never "complete".
                assert services[target].get("restart", "no") == "no", target
            else:
                assert state == "service_started", state
    assert services["tracescore-collector"]["depends_on"] == {
        "tracescore-db-init": {"condition": "service_completed_successfully"}
    }
    assert services["tracescore-db-init"]["depends_on"]["clickhouse"] == {
        "condition": "service_healthy"
    }


def test_healthchecks_read_only_variables_their_container_has(compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in _services(compose).items():
        if "healthcheck" not in service:
            continue
        # `$$NAME` in the file is `$NAME` for the container's shell after interpolation.
        command = " ".join(service["healthcheck"]["test"])
        for variable in re.findall(r"\$\{?([A-Za-z_]\w*)", command):
            assert variable in service.get("environment", {}), (name, variable)
            checked += 1
    assert checked


def test_published_host_ports_are_unique(compose: dict[str, Any]) -> None:
    hosts = [host for s in _services(compose).values() for host, _ in _ports(s)]
    assert hosts and len(hosts) == len(set(hosts)), hosts


def test_mounted_files_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for name, service in _services(compose).items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            assert target.startswith("/"), (name, volume)
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared


def test_tracescore_services_share_one_store_on_the_clickhouse_service(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    clickhouse = services["clickhouse"]["environment"]
    urls = {s["environment"]["TRACESCORE_STORE"] for s in _ours(compose).values()}
    assert len(urls) == 1
    options = parse_clickhouse_url(urls.pop())
    assert options.host == "clickhouse"
    assert options.port == 8123 and (8123, 8123) in _ports(services["clickhouse"])
    assert options.username == clickhouse["CLICKHOUSE_USER"]
    assert options.password == clickhouse["CLICKHOUSE_PASSWORD"]
    # Grafana's dashboards read the database tracescore writes.
    assert options.database == services["grafana"]["environment"]["CLICKHOUSE_DATABASE"]


def test_compose_commands_parse_with_the_real_cli(compose: dict[str, Any]) -> None:
    services = _ours(compose)
    parsed = {name: _parse(s["command"], name) for name, s in services.items()}
    init = parsed["tracescore-db-init"]
    assert (init.command, init.db_command) == ("db", "init")
    assert init.retention_days >= 1

    serve = parsed["tracescore-collector"]
    assert (serve.command, serve.collector_command) == ("collector", "serve")
    container_ports = {c for _, c in _ports(services["tracescore-collector"])}
    grpc = serve.grpc_port or DEFAULTS.grpc.port
    http = serve.http_port or DEFAULTS.http.port
    assert container_ports == {grpc, http}
    spool_mounts = [v.split(":")[1] for v in services["tracescore-collector"]["volumes"]]
    assert str(serve.spool_dir) in spool_mounts
    health = services["tracescore-collector"]["healthcheck"]["test"]
    assert f"http://localhost:{http}/health" in " ".join(health)

    watch = parsed["tracescore-watch"]
    assert watch.command == "watch"
    mounts = dict(reversed(v.split(":")[:2]) for v in services["tracescore-watch"]["volumes"])
    assert load_scoring_config(DEPLOY / mounts[str(watch.config)]).config.evaluators


def test_the_otel_collector_forwards_to_the_tracescore_collector(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    service = services["otel-collector"]
    (mount,) = service["volumes"]
    source, target = mount.split(":")[:2]
    assert f"--config={target}" in service["command"]
    config = yaml.safe_load((DEPLOY / source).read_text(encoding="utf-8"))
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "logs"}
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline[kind]:
                assert component in config[kind], f"{component} is not defined in {kind}"
    forwarders = [n for n in config["exporters"] if n.split("/")[0] in ("otlp", "otlp_grpc")]
    assert forwarders
    for pipeline in pipelines.values():
        assert set(forwarders) <= set(pipeline["exporters"])
    for name in forwarders:
        host, _, port = config["exporters"][name]["endpoint"].rpartition(":")
        assert host in services and services[host]["build"]
        assert int(port) == DEFAULTS.grpc.port
    # What it listens on is what the compose file publishes.
    protocols = config["receivers"]["otlp"]["protocols"]
    listening = {int(p["endpoint"].rpartition(":")[2]) for p in protocols.values()}
    assert listening == {c for _, c in _ports(service)}
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]


def test_grafana_mounts_what_its_provisioning_reads(compose: dict[str, Any]) -> None:
    grafana = _services(compose)["grafana"]
    env = grafana["environment"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("."))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = [
        provider
        for path in (DEPLOY / "grafana/provisioning/dashboards").glob("*.yaml")
        for provider in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]
    ]
    assert providers
    for provider in providers:
        assert provider["options"]["path"] == mounts["./grafana/dashboards"]
    for path in (DEPLOY / "grafana/provisioning/datasources").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        for name in re.findall(r"\$\{([A-Za-z_]\w*)\}", text):
            assert name in env, f"{path.name} needs {name} in grafana's environment"
        for source in yaml.safe_load(text)["datasources"]:
            assert source["type"] in env["GF_INSTALL_PLUGINS"].split(",")


def test_grafanas_clickhouse_user_is_the_read_only_one_the_server_defines(
    compose: dict[str, Any],
) -> None:
    services = _services(compose)
    server_env = services["clickhouse"]["environment"]
    grafana_env = services["grafana"]["environment"]
    mounted = [v.split(":")[0] for v in services["clickhouse"]["volumes"] if v.startswith(".")]
    users = [ET.parse(DEPLOY / path).getroot() for path in mounted if "users.d" in path]
    (user,) = [u for root in users for u in root.iter(grafana_env["CLICKHOUSE_USER"])]
    password = user.find("password")
    assert password is not None
    assert server_env[password.attrib["from_env"]] == grafana_env["CLICKHOUSE_PASSWORD"]
    profile = user.findtext("profile")
    (readonly,) = [r for root in users for p in root.iter(profile) for r in p.iter("readonly")]
    assert readonly.text in ("1", "2")


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    plugin = docker is not None and (
        subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    )
    if plugin and docker is not None:
        command, text = [docker, "compose", "-f", str(COMPOSE)], None
    elif (legacy := shutil.which("docker-compose")) is not None:
        # Compose v1 (Debian's docker-compose, which .ci/run installs) predates the
        # top-level `name`; everything else it checks against its own schema.
        document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
        assert document.pop("name") == "tracescore"
        command = [legacy, "--project-directory", str(DEPLOY), "-f", "-"]
        text = yaml.safe_dump(document)
    else:
        pytest.skip("neither `docker compose` nor docker-compose here (the YAML checks ran)")
    result = subprocess.run(
        [*command, "config", "--quiet"],
        input=text,
        capture_output=True,
        text=True,
        cwd=DEPLOY,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# -- the image --------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_copies_every_workspace_member_and_runs_tracescore() -> None:
    instructions = _dockerfile()
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    members = set(workspace["tool"]["uv"]["workspace"]["members"])
    copied: set[str] = set()
    for op, rest in instructions:
        if op == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            copied.update(sources)
    assert members | {"pyproject.toml", "uv.lock"} <= copied
    entrypoints = [rest for op, rest in instructions if op == "ENTRYPOINT"]
    assert entrypoints == ['["tracescore"]']
    (cmd,) = [rest for op, rest in instructions if op == "CMD"]
    assert _parse(yaml.safe_load(cmd), "Dockerfile CMD").collector_command == "serve"
    exposed = {int(p) for op, rest in instructions if op == "EXPOSE" for p in rest.split()}
    assert {DEFAULTS.grpc.port, DEFAULTS.http.port} <= exposed
    assert any(op == "USER" and rest != "root" for op, rest in instructions)


def test_the_build_context_keeps_what_the_image_copies() -> None:
    ignored = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for op, rest in _dockerfile():
        if op == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert source not in ignored and f"{source}/" not in ignored, source


# -- Kubernetes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    loaded = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def manifests(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        docs.extend(
            d for d in yaml.safe_load_all((K8S / resource).read_text(encoding="utf-8")) if d
        )
    return docs


def _one(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def _workloads(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for m in manifests:
        if m["kind"] in ("Deployment", "Job"):
            for container in m["spec"]["template"]["spec"]["containers"]:
                yield m["metadata"]["name"], container


def test_every_manifest_is_listed_once(
    kustomization: dict[str, Any], manifests: list[dict[str, Any]]
) -> None:
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    kinds = sorted(m["kind"] for m in manifests)
    collector = ["Deployment", "Service", "HorizontalPodAutoscaler"]
    assert kinds == sorted(["Namespace", "Job", *collector, "ConfigMap", "Deployment"])
    names = [(m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(names) == len(set(names))


KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
"""The oldest Kubernetes with every API the manifests use (autoscaling/v2, batch/v1 Job
ttl), and a recent one."""


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_strictly_against_the_official_kubernetes_schemas(
    manifests: list[dict[str, Any]], version: str
) -> None:
    # kubernetes-validate carries the schemas generated from Kubernetes' OpenAPI spec;
    # strict: a misspelt or misplaced field is an error, as kubectl --validate=strict.
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_kubernetes_schema_check_catches_a_misplaced_field(
    manifests: list[dict[str, Any]],
) -> None:
    deployment = copy.deepcopy(_one(manifests, "Deployment", "tracescore-watch"))
    deployment["spec"]["template"]["spec"]["containers"][0]["replicas"] = 2
    with pytest.raises(kubernetes_validate.ValidationError, match="replicas"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_selectors_match_their_pods(manifests: list[dict[str, Any]]) -> None:
    for manifest in manifests:
        if manifest["kind"] == "Deployment":
            selector = manifest["spec"]["selector"]["matchLabels"]
            labels = manifest["spec"]["template"]["metadata"]["labels"]
            assert selector and selector.items() <= labels.items(), manifest["metadata"]["name"]


def test_the_collector_service_and_hpa_target_the_collector_deployment(
    manifests: list[dict[str, Any]],
) -> None:
    deployment = _one(manifests, "Deployment", "tracescore-collector")
    pod = deployment["spec"]["template"]
    service = _one(manifests, "Service", "tracescore-collector")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    # No other Deployment's pods are selected by the Service.
    for other in manifests:
        if other["kind"] == "Deployment" and other is not deployment:
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert not service["spec"]["selector"].items() <= labels.items()
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        assert target in ports or target in ports.values(), target
    args = _parse(container["args"], "collector Deployment")
    assert ports == {
        "otlp-grpc": args.grpc_port or DEFAULTS.grpc.port,
        "otlp-http": args.http_port or DEFAULTS.http.port,
    }
    hpa = _one(manifests, "HorizontalPodAutoscaler", "tracescore-collector")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"],
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # The spool directory the collector is told to use is a mounted volume.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert str(args.spool_dir) in mounts
    volumes = {v["name"] for v in pod["spec"]["volumes"]}
    assert mounts[str(args.spool_dir)] in volumes


def test_the_collector_probes_hit_real_endpoints(
    manifests: list[dict[str, Any]], pipeline: IngestPipeline
) -> None:
    deployment = _one(manifests, "Deployment", "tracescore-collector")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = [container["readinessProbe"], container["livenessProbe"]]
    with HttpReceiver(pipeline) as receiver:
        for probe in probes:
            if "httpGet" in probe:
                get = probe["httpGet"]
                # The probe's port is the collector's OTLP/HTTP port, where these live.
                assert ports.get(get["port"], get["port"]) == DEFAULTS.http.port
                with urllib.request.urlopen(f"{receiver.endpoint}{get['path']}") as reply:
                    assert reply.status == 200
            else:
                port = probe["tcpSocket"]["port"]
                assert ports.get(port, port) in (DEFAULTS.grpc.port, DEFAULTS.http.port)


def test_workloads_read_the_store_url_from_one_secret(manifests: list[dict[str, Any]]) -> None:
    refs = set()
    for name, container in _workloads(manifests):
        (store,) = [e for e in container["env"] if e["name"] == "TRACESCORE_STORE"]
        ref = store["valueFrom"]["secretKeyRef"]
        refs.add((ref["name"], ref["key"]))
        assert "--store" not in container["args"], f"{name}: the URL belongs in the Secret"
    assert refs == {("tracescore-store", "url")}
    # No Secret with a value is committed: it is created by hand (see deploy/README.md).
    assert not [m for m in manifests if m["kind"] == "Secret"]


def test_workload_commands_parse_and_use_the_kustomized_image(
    kustomization: dict[str, Any], manifests: list[dict[str, Any]]
) -> None:
    image_names = {i["name"] for i in kustomization["images"]}
    commands = set()
    for name, container in _workloads(manifests):
        assert container["image"] in image_names, name
        commands.add(_parse(container["args"], name).command)
    assert commands == {"db", "collector", "watch"}
    job = _one(manifests, "Job", "tracescore-db-init")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    parsed = _parse(container["args"], "db-init Job")
    assert parsed.retention_days >= 1 and parsed.scores_retention_days >= 1


def test_watch_runs_once_with_the_shipped_scoring_config(
    manifests: list[dict[str, Any]],
) -> None:
    deployment = _one(manifests, "Deployment", "tracescore-watch")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config_path = Path(_parse(container["args"], "watch Deployment").config)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    config_map = _one(manifests, "ConfigMap", volume["configMap"]["name"])
    text = config_map["data"][config_path.name]
    assert text == (DEPLOY / "scoring.yaml").read_text(encoding="utf-8")
    config = load_scoring_config(DEPLOY / "scoring.yaml").config
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": config.watch.metrics_port}


def test_kubectl_kustomize_builds_the_manifests(manifests: list[dict[str, Any]]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl on this machine (the structural checks above still ran)")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(d["kind"] for d in built) == sorted(m["kind"] for m in manifests)
    assert all(d["metadata"].get("namespace", "tracescore") == "tracescore" for d in built)


# -- ClickHouse cluster -----------------------------------------------------------------


def test_the_committed_cluster_ddl_is_what_db_init_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(CLUSTER_DDL_ARGS) == EXIT_OK
    generated = capsys.readouterr().out
    committed = (DEPLOY / "clickhouse" / "cluster-ddl.sql").read_text(encoding="utf-8")
    assert committed == generated, (
        "deploy/clickhouse/cluster-ddl.sql is stale; regenerate it with "
        f"`tracescore {' '.join(CLUSTER_DDL_ARGS)} > deploy/clickhouse/cluster-ddl.sql`"
    )


def test_the_example_cluster_config_defines_the_cluster_the_ddl_uses() -> None:
    root = ET.parse(DEPLOY / "clickhouse" / "cluster" / "tracescore-cluster.xml").getroot()
    remote = root.find("remote_servers")
    assert remote is not None and remote.find(CLUSTER) is not None
    macros = root.find("macros")
    assert macros is not None and {m.tag for m in macros} >= {"shard", "replica"}
    ddl = (DEPLOY / "clickhouse" / "cluster-ddl.sql").read_text(encoding="utf-8")
    assert f"ON CLUSTER `{CLUSTER}`" in ddl and "{shard}" in ddl and "{replica}" in ddl


# -- the deployment guide ---------------------------------------------------------------


def test_every_tracescore_command_in_the_deploy_readme_parses() -> None:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, flags=re.DOTALL)
    commands = [args for block in blocks for args in _commands(block)]
    assert len(commands) >= 3
    for args in commands:
        _parse(args, "deploy/README.md")
