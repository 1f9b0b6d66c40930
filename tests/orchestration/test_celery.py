"""HSFace shards fanned out over two Celery workers on this machine (the local broker: kombu's
filesystem transport, no server), against the in-process run of the same shards.

The test starts both workers (``dagster-celery worker start``, one process each, in their own
process groups), runs the shard partitions with ``dagster asset materialize`` and the
``celery`` executor, and kills what it started by process group at the end. Everything stays
in this test's temporary folders; nothing listens on a network port.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest

from assets_defs import build_asset_checks, build_assets
from assets_defs.generation import shard_keys
from orchestration.definitions import make_resources
from orchestration.executors import CelerySettings, celery_config, write_worker_config
from orchestration.jobs import HSFACE
from orchestration.main_job import dagster_instance
from tests.orchestration.conftest import PROJECT, make_micro_project
from vec2face.config import read_params
from vec2face.hsface.writer import shard_name, shard_tmp_name

pytestmark = pytest.mark.slow  # about two minutes on 2 loaded cores; part of the normal suite

SHARDS = ["00000", "00001"]
WORKERS = ("shardworker1", "shardworker2")
BIN = Path(sys.executable).parent
#: a broker nothing answers: a loopback port no test opens
DEAD_BROKER = "pyamqp://guest:secret@127.0.0.1:9//"
DEADLINE = 150  # seconds any one wait of this test may take


def _tree_hashes(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _wait(predicate, what: str, timeout: float = DEADLINE, every: float = 0.5):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Processes:
    """What the test started, each in its own process group; stopped by group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.started = env, logs, {}

    def start(self, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv, cwd=PROJECT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.started[name] = proc
        return proc

    def ready(self, name: str) -> bool:
        """Whether celery worker ``name`` says it is ready (fails when it has exited)."""
        log = self.log(name)
        if self.started[name].poll() is not None:
            raise AssertionError(f"worker {name} exited:\n{log[-3000:]}")
        return f"{name}@" in log and " ready." in log

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.started.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.started.values():
            proc.wait(timeout=30)

    def alive(self) -> list[int]:
        """Every live process left in a group this test started."""
        groups = {q.pid for q in self.started.values()}
        found = []
        for proc in psutil.process_iter(["pid", "status"]):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and _pgid(proc.pid) in groups:
                found.append(proc.pid)
        return found


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _materialize_cli(partition: str) -> list[str]:
    return [str(BIN / "dagster"), "asset", "materialize", "-m", "orchestration.definitions",
            "--select", "hsface_dataset", "--partition", partition]


def _shard_runs(instance: dg.DagsterInstance, partition: str) -> list[dg.DagsterRun]:
    return [r for r in instance.get_runs() if r.tags.get("dagster/partition") == partition]


def _events(instance, run_id: str, kind: dg.DagsterEventType | None = None):
    records = instance.all_logs(run_id)
    return [r for r in records if r.dagster_event and (
        kind is None or r.dagster_event.event_type == kind)]


def _celery_workers(instance, run_id: str, step: str = "hsface_dataset") -> list[str]:
    """The Celery worker of each execution of ``step`` in a run (dagster-celery's engine
    event; the shard's check is a step of its own)."""
    found = []
    for record in _events(instance, run_id, dg.DagsterEventType.ENGINE_EVENT):
        metadata = record.dagster_event.engine_event_data.metadata or {}
        if record.dagster_event.step_key == step and "Celery worker" in metadata:
            found.append(metadata["Celery worker"].value)
    return found


@pytest.fixture(scope="module")
def fan_out(tmp_path_factory):
    """The micro chain up to the shards, the shards in process (the reference), then the same
    shards through two Celery workers, then one of them again with its worker process killed."""
    base = tmp_path_factory.mktemp("celery")
    repo = make_micro_project(base / "project", zoo=False)  # the micro chain trains its models
    out, params_file = repo / "outputs" / "tiny", repo / "params.yaml"
    home = base / "dagster_home"
    (base / "logs").mkdir()
    env = {
        **os.environ, "DAGSTER_HOME": str(home), "VEC2FACE_OUT": str(out),
        "VEC2FACE_PARAMS": str(params_file), "VEC2FACE_REPO": str(repo),
        "VEC2FACE_EXECUTOR": "celery", "PYTHONPATH": str(PROJECT),
        "DAGSTER_DISABLE_TELEMETRY": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1",
        # dagster-celery starts `celery` from the PATH: this environment's
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = Processes(env, base / "logs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        instance = dagster_instance(repo)
        try:
            config = write_worker_config(CelerySettings(), out, base / "celery_worker.yaml")
            # the workers import the pipeline while the chain before the shards runs here
            for name in WORKERS:
                procs.start(name, [
                    str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                    "-y", str(config), "-n", name, "-i", "orchestration.definitions",
                    "--", "--concurrency=1", "--pool=prefork",
                ])
            # a run whose broker nothing answers fails before any step
            procs.start("dead_broker", _materialize_cli(SHARDS[0]),
                        VEC2FACE_CELERY_BROKER=DEAD_BROKER)

            params = read_params(params_file)
            assets = [*build_assets(params), *build_asset_checks(params)]
            resources = make_resources(str(out), str(params_file), str(repo))
            upstream = HSFACE.upstream(include_self=False).without_checks()
            prepare = dg.materialize(assets, selection=upstream, resources=resources,
                                     instance=instance)
            assert prepare.success
            assert shard_keys(params) == SHARDS
            for key in SHARDS:
                assert dg.materialize(assets, selection=HSFACE.without_checks(),
                                      partition_key=key, resources=resources,
                                      instance=instance).success
            shards = out / "hsface" / "shards"
            reference = {k: _tree_hashes(shards / shard_name(int(k))) for k in SHARDS}
            shutil.move(shards, base / "reference_shards")  # the workers make them anew

            for name in WORKERS:
                _wait(lambda name=name: procs.ready(name), f"celery worker {name}")
            started = time.monotonic()
            runs = {k: procs.start(f"run_{k}", _materialize_cli(k)) for k in SHARDS}
            for key, proc in runs.items():
                assert proc.wait(timeout=DEADLINE) == 0, procs.log(f"run_{key}")
            fan_out_seconds = time.monotonic() - started
            celery_shards = {k: _tree_hashes(shards / shard_name(int(k))) for k in SHARDS}

            killed = _kill_mid_shard(procs, instance, shards, SHARDS[1])
            after_kill = _tree_hashes(shards / shard_name(int(SHARDS[1])))
            dead = procs.started["dead_broker"]
            dead.wait(timeout=DEADLINE)
            yield {
                "instance": instance, "reference": reference, "celery": celery_shards,
                "after_kill": after_kill, "killed": killed, "procs": procs,
                "dead_broker_rc": dead.returncode, "fan_out_seconds": fan_out_seconds,
                "out": out,
            }
        finally:
            procs.stop_all()
    assert _wait(lambda: procs.alive() == [], "the killed process groups to end", timeout=20)


def _kill_mid_shard(procs: Processes, instance, shards: Path, key: str) -> dict:
    """Regenerate shard ``key`` through the workers and SIGKILL the worker process that
    generates it while its temporary folder is being written; what was seen then."""
    shutil.rmtree(shards / shard_name(int(key)))  # not current any more: the run redoes it
    before = {r.run_id for r in _shard_runs(instance, key)}
    run = procs.start("run_killed", _materialize_cli(key))
    tmp, final = shards / shard_tmp_name(int(key)), shards / shard_name(int(key))
    _wait(lambda: tmp.is_dir(), "the shard's temporary folder", every=0.02)
    (run_id,) = {r.run_id for r in _shard_runs(instance, key)} - before
    (worker,) = _wait(lambda: _celery_workers(instance, run_id), "the step's celery worker")
    # dagster-celery worker start -> celery worker (main) -> its one pool process (the step)
    main = psutil.Process(procs.started[worker.split("@")[0]].pid).children()[0]
    (pool,) = main.children()
    pool.kill()
    seen = {"worker": worker, "pool_pid": pool.pid, "final_existed": final.exists()}
    assert run.wait(timeout=DEADLINE) == 0, procs.log("run_killed")
    seen["run_id"] = run_id
    return seen


def test_a_dead_broker_fails_the_run_before_any_step_naming_the_url(fan_out):
    procs, instance = fan_out["procs"], fan_out["instance"]
    assert fan_out["dead_broker_rc"] != 0
    message = "celery broker amqp://guest:**@127.0.0.1:9// cannot be reached"
    assert message in procs.log("dead_broker")
    (run,) = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.FAILURE]
    assert _events(instance, run.run_id, dg.DagsterEventType.STEP_START) == []
    assert _events(instance, run.run_id, dg.DagsterEventType.RUN_FAILURE)
    assert any(message in str(r.dagster_event.event_specific_data)
               for r in _events(instance, run.run_id))  # the run's own record names it too
    assert "secret" not in procs.log("dead_broker")


def test_two_workers_generate_one_shard_each_at_the_same_time(fan_out):
    instance = fan_out["instance"]
    workers, spans = set(), []
    for key in SHARDS:
        (run,) = [
            r for r in _shard_runs(instance, key)
            if r.run_id != fan_out["killed"]["run_id"] and r.status == dg.DagsterRunStatus.SUCCESS
            and _celery_workers(instance, r.run_id)
        ]
        (worker,) = _celery_workers(instance, run.run_id)
        workers.add(worker.split("@")[0])
        start = _events(instance, run.run_id, dg.DagsterEventType.STEP_START)[0].timestamp
        end = _events(instance, run.run_id, dg.DagsterEventType.STEP_SUCCESS)[-1].timestamp
        spans.append((start, end))
    assert workers == set(WORKERS)
    (a_start, a_end), (b_start, b_end) = spans
    assert a_start < b_end and b_start < a_end  # the two shard steps overlapped


def test_celery_shards_are_byte_identical_to_the_in_process_ones(fan_out):
    reference, celery = fan_out["reference"], fan_out["celery"]
    for key in SHARDS:
        assert "train.lmdb" in reference[key]
        assert celery[key] == reference[key], key


def test_a_worker_killed_mid_shard_hands_the_shard_to_a_retry_with_the_same_bytes(fan_out):
    killed, instance = fan_out["killed"], fan_out["instance"]
    assert killed["final_existed"] is False  # killed while the shard was being written
    assert not psutil.pid_exists(killed["pool_pid"])
    starts = [e for e in _events(instance, killed["run_id"], dg.DagsterEventType.STEP_START)
              if e.dagster_event.step_key == "hsface_dataset"]
    assert len(starts) == 2  # the killed attempt and the one that finished
    assert len(_celery_workers(instance, killed["run_id"])) == 2
    assert instance.get_run_by_id(killed["run_id"]).status == dg.DagsterRunStatus.SUCCESS
    assert fan_out["after_kill"] == fan_out["reference"][SHARDS[1]]


def test_worker_config_matches_the_runs_celery_config(tmp_path):
    import yaml

    path = write_worker_config(CelerySettings(), tmp_path / "out", tmp_path / "w.yaml")
    written = yaml.safe_load(path.read_text())["execution"]["config"]
    assert written == celery_config(CelerySettings(), tmp_path / "out")
    assert written["broker"] == "filesystem://" and written["backend"].startswith("file://")
    assert written["config_source"]["task_acks_late"] is True
