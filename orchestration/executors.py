"""Which Dagster executor runs the steps: ``in_process``, ``multiprocess``, ``celery`` or ``k8s``.

The ``executor`` section of params.yaml chooses it (``VEC2FACE_EXECUTOR`` overrides its
``kind``, ``VEC2FACE_CELERY_BROKER`` / ``VEC2FACE_CELERY_BACKEND`` its Celery URLs);
:func:`orchestration.definitions.make_definitions` sets it as the Definitions' default, so
``dagster asset materialize``, backfills and the UI's launches use it. The main job
(:mod:`orchestration.main_job`) always runs in process.

Celery's ``local`` broker and result backend need no server: kombu's filesystem transport
and Celery's file backend, in ``<root>/.celery`` (one machine; the workers read the same
folders). In production the broker is a Redis or RabbitMQ URL. A broker that cannot be
reached stops the run before any step, with an error naming the URL.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import yaml
from pydantic import BaseModel, ConfigDict, Field

from vec2face.config import read_params
from vec2face.errors import ConfigError

KINDS = ("in_process", "multiprocess", "celery", "k8s")
#: what ``local`` means for the broker and the result backend: folders under the root
LOCAL = "local"
LOCAL_FOLDER = ".celery"
ENV_KIND, ENV_BROKER, ENV_BACKEND = (
    "VEC2FACE_EXECUTOR",
    "VEC2FACE_CELERY_BROKER",
    "VEC2FACE_CELERY_BACKEND",
)
#: seconds a run waits for the broker before it gives up (and names it)
BROKER_TIMEOUT = 5.0


class CelerySettings(BaseModel):
    """The ``executor.celery`` section."""

    model_config = ConfigDict(extra="forbid")

    broker: str = Field(
        LOCAL, description="'local' (kombu's filesystem transport under <root>/.celery) or a "
        "broker URL: redis://HOST:6379/0, amqp://USER:PASSWORD@HOST:5672//",
    )
    backend: str = Field(
        LOCAL, description="'local' (result files under <root>/.celery/results) or a result "
        "backend URL: redis://HOST:6379/1, db+postgresql://...",
    )
    queue: str = Field("dagster", description="the queue the steps go to (dagster-celery's)")


class ExecutorSettings(BaseModel):
    """The ``executor`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["in_process", "multiprocess", "celery", "k8s"] = "multiprocess"
    max_concurrent: int | None = Field(
        None, gt=0, description="multiprocess: steps at once (default: the CPU count)"
    )
    celery: CelerySettings = CelerySettings()
    k8s: dict[str, Any] = Field(
        default_factory=dict, description="dagster-k8s k8s_job_executor config (job_image, "
        "job_namespace, step_k8s_config, ...)",
    )


def executor_settings(
    params: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> ExecutorSettings:
    """The params' ``executor`` section with the environment's overrides, validated.

    Raises:
        ConfigError: an unknown kind or key, naming it and the choices.
    """
    env = os.environ if env is None else env
    section = dict(params.get("executor") or {})
    if env.get(ENV_KIND):
        section["kind"] = env[ENV_KIND]
    celery = dict(section.get("celery") or {})
    for key, var in (("broker", ENV_BROKER), ("backend", ENV_BACKEND)):
        if env.get(var):
            celery[key] = env[var]
    section["celery"] = celery
    if section.get("kind", "multiprocess") not in KINDS:
        raise ConfigError(
            f"executor.kind (or {ENV_KIND}) is {section['kind']!r}; one of {', '.join(KINDS)}"
        )
    try:
        return ExecutorSettings.model_validate(section)
    except ValueError as exc:
        raise ConfigError(f"executor section: {exc}") from None


# ---------------------------------------------------------------------------------------
# Celery


def local_folders(root: str | Path) -> dict[str, Path]:
    """The local broker's and result backend's folders under ``root``."""
    base = Path(root).resolve() / LOCAL_FOLDER
    return {
        "queue": base / "queue",
        "processed": base / "processed",
        "control": base / "control",
        "results": base / "results",
    }


def celery_config(settings: CelerySettings, root: str | Path) -> dict[str, Any]:
    """The ``celery_executor`` config (broker, backend, Celery settings) of ``settings``;
    the workers start with the same (:func:`write_worker_config`).

    A step's task is acknowledged when it ends, not when it starts, and a worker holds one
    task at a time: a worker process that dies mid-step hands its step back to the queue
    (another worker redoes it) and two idle workers take two shards, not one worker both."""
    from dagster_celery.defaults import broker_transport_options

    transport = dict(broker_transport_options)  # publish retries (dagster-celery's defaults)
    broker, backend = settings.broker, settings.backend
    folders = local_folders(root)
    if broker == LOCAL:
        broker = "filesystem://"
        transport.update(
            data_folder_in=str(folders["queue"]),
            data_folder_out=str(folders["queue"]),
            # a worker takes a message by renaming it into this folder (same file system:
            # atomic, so two workers never take the same one)
            store_processed=True,
            processed_folder=str(folders["processed"]),
            control_folder=str(folders["control"]),
        )
    if backend == LOCAL:
        backend = folders["results"].as_uri()
    return {
        "broker": broker,
        "backend": backend,
        "config_source": {
            "broker_transport_options": transport,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "task_default_queue": settings.queue,
        },
    }


def start_local_broker(root: str | Path) -> dict[str, Path]:
    """Create the local broker's folders (all the 'server' it has); idempotent."""
    folders = local_folders(root)
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return folders


class BrokerUnreachable(dg.DagsterError):
    """The Celery broker of a run cannot be reached."""


def check_broker(config: Mapping[str, Any], timeout: float = BROKER_TIMEOUT) -> None:
    """Connect to the broker of a ``celery_executor`` config once.

    Raises:
        BrokerUnreachable: one line naming the URL (password masked) and the reason.
    """
    from kombu import Connection

    url = config.get("broker") or ""
    transport = dict((config.get("config_source") or {}).get("broker_transport_options") or {})
    if url.startswith("filesystem:"):  # the local broker: folders, made here if missing
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            folder = transport.get(key)
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
                writable = os.access(folder, os.W_OK)
            except (OSError, TypeError) as exc:
                writable, reason = False, str(exc)
            else:
                reason = "not writable"
            if not writable:
                raise BrokerUnreachable(f"celery broker {url} cannot be reached: its {key} "
                                        f"{folder}: {reason}")
        return
    connection = Connection(url, connect_timeout=timeout, transport_options=transport)
    try:
        connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises the transport's own errors
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BrokerUnreachable(
            f"celery broker {connection.as_uri()} cannot be reached: {reason}"
        ) from None
    finally:
        connection.release()


def _checked_celery_executor() -> dg.ExecutorDefinition:
    """dagster-celery's executor, which first checks that its broker answers."""
    from dagster_celery import celery_executor

    def create(init_context: dg.InitExecutorContext) -> dg.Executor:
        backend = init_context.executor_config.get("backend") or ""
        if backend.startswith("file://"):  # the local result backend: a folder
            Path(backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        check_broker(init_context.executor_config)
        return celery_executor.executor_creation_fn(init_context)

    return dg.ExecutorDefinition(
        name=celery_executor.name,
        config_schema=celery_executor.config_schema,
        requirements=celery_executor.get_requirements,
        executor_creation_fn=create,
        description="dagster-celery's executor; a run first checks that the broker answers",
    )


def write_worker_config(settings: CelerySettings, root: str | Path, path: str | Path) -> Path:
    """The ``-y`` file of ``dagster-celery worker start``: the run's Celery config (the local
    broker's folders are made here when it is used)."""
    if LOCAL in (settings.broker, settings.backend):
        start_local_broker(root)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump({"execution": {"config": celery_config(settings, root)}}, sort_keys=False)
    )
    return path


# ---------------------------------------------------------------------------------------
# The executor


def make_executor(settings: ExecutorSettings, root: str | Path) -> dg.ExecutorDefinition:
    """The Definitions' executor for ``settings`` (outputs under ``root``)."""
    if settings.kind == "in_process":
        return dg.in_process_executor
    if settings.kind == "multiprocess":
        if settings.max_concurrent is None:
            return dg.multiprocess_executor
        return dg.multiprocess_executor.configured({"max_concurrent": settings.max_concurrent})
    if settings.kind == "celery":
        return _checked_celery_executor().configured(celery_config(settings.celery, root))
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(settings.k8s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.executors",
        description="Write the config file Celery workers start with (dagster-celery worker "
        "start -y FILE), from the params' executor section and the environment.",
    )
    parser.add_argument("--params", default=os.environ.get("VEC2FACE_PARAMS", "params.yaml"))
    parser.add_argument("--out", default=os.environ.get("VEC2FACE_OUT", "outputs/tiny"),
                        help="output root (the runs' VEC2FACE_OUT)")
    parser.add_argument("--config", required=True, help="the worker config file to write")
    args = parser.parse_args(argv)
    try:
        settings = executor_settings(read_params(args.params))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(write_worker_config(settings.celery, args.out, args.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
