"""``dagster dev`` on a free loopback port: a materialization launched through the GraphQL
API as the UI launches it (``launchRun`` on the repository's asset job with an asset
selection) runs to success; stopped as a user stops it (SIGTERM, then SIGINT, then SIGKILL to
its group), dagster dev leaves no process and no listening port behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.orchestration.conftest import PROJECT

pytestmark = pytest.mark.slow  # a server start and one run: about a minute on 2 loaded cores

INSTANCE_YAML = PROJECT / "orchestration" / "dagster.yaml"

REPOSITORIES = """
query { repositoriesOrError { __typename ... on RepositoryConnection {
  nodes { name location { name } jobs { name } } } } }
"""

LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
  }
}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status assetMaterializations { assetKey { path } } }
    ... on Error { message }
  }
}
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


def _wait_until_serving(
    url: str, server: subprocess.Popen, log: Path, limit_s: float = 240
) -> dict:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert server.poll() is None, f"dagster dev exited: {log.read_text()[-3000:]}"
        try:
            found = _graphql(url, REPOSITORIES)["repositoriesOrError"]
            if found["__typename"] == "RepositoryConnection" and found["nodes"]:
                return found["nodes"][0]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(2)
    raise AssertionError(f"dagster dev did not serve in {limit_s} s: {log.read_text()[-3000:]}")


def _group_gone(pgid: int, limit_s: float = 30) -> bool:
    """Whether every process of the group has exited (within ``limit_s``)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def _stop(server: subprocess.Popen) -> str:
    """Stop dagster dev as a user does, escalating as Dagster's own tests do: SIGTERM to
    its pid (``kill -TERM``), then SIGINT (Ctrl-C), then SIGKILL to the whole group. Returns
    the signal that stopped it. Alone it stops on SIGTERM within a minute; inside the full
    parallel suite it has ignored SIGTERM for minutes (as upstream reports for its webserver,
    dagster-io/dagster#29165), so the test asserts that it stops and leaves nothing behind,
    not which signal it took."""
    for sig, wait_s in ((signal.SIGTERM, 60), (signal.SIGINT, 60)):
        server.send_signal(sig)
        try:
            server.wait(timeout=wait_s)
            return sig.name
        except subprocess.TimeoutExpired:
            continue
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=30)
    return signal.SIGKILL.name


def test_ui_launches_a_materialization_through_graphql(micro_project, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(INSTANCE_YAML, home / "dagster.yaml")  # telemetry off, storage in DAGSTER_HOME
    out = micro_project / "outputs" / "tiny"
    port = _free_port()
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        VEC2FACE_OUT=str(out),
        VEC2FACE_PARAMS=str(micro_project / "params.yaml"),
        VEC2FACE_REPO=str(micro_project),
        DAGSTER_DISABLE_TELEMETRY="1",
        PYTHONPATH=str(PROJECT),
    )
    log = tmp_path / "dagster_dev.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster")),
                "dev",
                "-m",
                "orchestration.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=PROJECT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        repository = _wait_until_serving(url, server, log)
        asset_job = next(
            j["name"] for j in repository["jobs"] if j["name"].startswith("__ASSET_JOB")
        )
        launched = _graphql(
            url,
            LAUNCH,
            {
                "executionParams": {
                    "selector": {
                        "repositoryLocationName": repository["location"]["name"],
                        "repositoryName": repository["name"],
                        "jobName": asset_job,
                        "assetSelection": [{"path": ["webface_pool"]}],
                        "assetCheckSelection": [],
                    },
                    "mode": "default",
                    "executionMetadata": {
                        "tags": [{"key": "vec2face/entry", "value": "test_webserver"}]
                    },
                }
            },
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline, run = time.monotonic() + 300, {}
        while time.monotonic() < deadline:
            run = _graphql(url, RUN, {"runId": run_id})["runOrError"]
            if run.get("status") in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(2)
        assert run.get("status") == "SUCCESS", (run, log.read_text()[-3000:])
        assert [m["assetKey"]["path"] for m in run["assetMaterializations"]] == [["webface_pool"]]
        assert sorted(p.name for p in (out / "world" / "webface").iterdir() if p.is_dir())[:1] == [
            "00000"
        ]
        assert (micro_project / "dvc.lock").is_file()  # the asset recorded its output in DVC
    finally:
        stopped_by = _stop(server)
    gone = _group_gone(server.pid)
    if not gone:
        os.killpg(server.pid, signal.SIGKILL)  # leave nothing running, then fail
    assert gone, f"processes of dagster dev outlived its stop ({stopped_by})"
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(url, timeout=5)
    assert yaml.safe_load((home / "dagster.yaml").read_text())["telemetry"] == {"enabled": False}
