"""Resources: small interfaces the assets use, each with an embedded local default.

- :class:`PipelinePaths` — the profile: where outputs go and which ``params.yaml`` holds
  the step sections.
- :class:`MlflowResource` — opens MLflow runs that satisfy the library's
  :class:`vec2face.tracking.Tracker`; SQLite store and local artifacts under the output
  root unless ``MLFLOW_TRACKING_URI`` (or ``tracking_uri``) names another server.
- :class:`DvcResource` — initialises the project's DVC repo when absent, records
  outputs produced outside ``dvc repro`` in the DVC cache and ``dvc.lock``, and reports
  their DVC hashes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from vec2face.config import read_params
from vec2face.tracking import flatten
from vec2face.utils.io import atomic_dir

# ---------------------------------------------------------------------------------------
# paths / profile


class PipelinePaths(dg.ConfigurableResource):
    """The profile a run uses: output root and the ``params.yaml`` with the step sections."""

    root: str = "outputs/tiny"
    params: str = "params.yaml"

    def root_dir(self) -> Path:
        return Path(self.root).resolve()

    def output(self, relpath: str) -> Path:
        """Absolute path of a step output, ``relpath`` under the root."""
        return self.root_dir() / relpath

    def params_path(self) -> Path:
        return Path(self.params).resolve()

    def read_params(self) -> dict[str, Any]:
        """The whole ``params.yaml`` (raises ConfigError naming the file when absent)."""
        return read_params(self.params_path())


# ---------------------------------------------------------------------------------------
# MLflow


#: characters MLflow refuses in metric names (the library names some ``tar@far=1e-03``)
_METRIC_NAME_REFUSED = re.compile(r"[^A-Za-z0-9_\-. :/]")


def metric_name(name: str) -> str:
    """``name`` with every character MLflow refuses replaced by ``_``."""
    return _METRIC_NAME_REFUSED.sub("_", name)


class MlflowTracker:
    """One MLflow run as a :class:`vec2face.tracking.Tracker` (explicit run id, no global state)."""

    def __init__(self, client: Any, run_id: str, experiment_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        # MLflow caps a param value at 6000 characters.
        items = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for s in range(0, len(items), 100):  # log_batch takes at most 100 params a call
            self.client.log_batch(self.run_id, params=items[s : s + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_name(k), float(v), now, step or 0) for k, v in metrics.items()]
        for s in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[s : s + 1000])

    def log_artifact(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
        else:
            self.client.log_artifact(self.run_id, str(path))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def scoped(self, prefix: str) -> ScopedTracker:
        """This run seen through ``prefix``: for a step that trains several models in one run."""
        return ScopedTracker(self, prefix)

    def log_dataset_input(self, name: str, path: Path, digest: str, context: str) -> None:
        """Record a dataset the run read (its DVC hash as the digest) as an MLflow input."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(
            name=name,
            digest=digest[:36],
            source_type="local",
            source=json.dumps({"uri": Path(path).resolve().as_uri(), "dvc_md5": digest}),
        )
        tags = [InputTag("mlflow.data.context", context)]
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, tags)])

    def log_pytorch_model(self, model: Any, artifact_path: str, example: Any) -> None:
        """Log ``model`` with MLflow's pytorch flavor and its signature (inferred from running
        it on ``example``), so ``mlflow.pytorch.load_model`` loads its registered versions.

        Args:
            model: a torch module in eval mode.
            artifact_path: folder of the run's artifacts to hold the MLflow model.
            example: a float32 numpy input batch.
        """
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        with torch.no_grad():
            out = model(torch.from_numpy(example))
        out = getattr(out, "images", out)  # the generator returns images and tokens
        output = (
            {k: v.float().numpy() for k, v in out.items()}
            if isinstance(out, Mapping)
            else out.float().numpy()
        )
        signature = infer_signature(example, output)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            mlflow.pytorch.save_model(
                model,
                folder,
                signature=signature,
                # the whole module, pickled: loads without an input example (pt2 needs one)
                serialization_format="pickle",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "vec2face"],
            )
            self.client.log_artifacts(self.run_id, str(folder), artifact_path=artifact_path)

    def artifact_uri(self, artifact_path: str = "") -> str:
        root = self.client.get_run(self.run_id).info.artifact_uri
        return f"{root}/{artifact_path}" if artifact_path else root


class ScopedTracker:
    """Params and metrics under ``<prefix>/``, files in the artifact folder ``<prefix>``."""

    def __init__(self, parent: MlflowTracker, prefix: str) -> None:
        self.parent = parent
        self.prefix = prefix
        self.run_id = parent.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.parent.log_params({self.prefix: dict(params)})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.parent.log_metrics({f"{self.prefix}/{k}": v for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | Path) -> None:
        path = Path(path)
        if path.is_dir():
            self.parent.client.log_artifacts(
                self.run_id, str(path), artifact_path=f"{self.prefix}/{path.name}"
            )
        else:
            self.parent.client.log_artifact(self.run_id, str(path), artifact_path=self.prefix)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.parent.set_tags({f"{self.prefix}.{k}": v for k, v in tags.items()})

    def log_pytorch_model(self, model: Any, artifact_path: str, example: Any) -> None:
        self.parent.log_pytorch_model(model, f"{self.prefix}/{artifact_path}", example)


#: MLflow 3 opens an experiment by its kind: model development, not a GenAI traces page
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

# MLflow creates the SQLite schema on first use; two processes doing so at once race.
_STORE_LOCK = Path(tempfile.gettempdir()) / "vec2face-mlflow-store.lock"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking. URI: ``tracking_uri`` if set, else ``MLFLOW_TRACKING_URI``, else
    ``sqlite:///<root>/mlflow.db`` with artifacts in ``<root>/mlartifacts``."""

    root: str = "outputs/tiny"
    tracking_uri: str = ""
    experiment: str = "vec2face"

    def resolved_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        env = os.environ.get("MLFLOW_TRACKING_URI", "")
        return env or f"sqlite:///{Path(self.root).resolve() / 'mlflow.db'}"

    def _embedded(self) -> bool:
        return not self.tracking_uri and not os.environ.get("MLFLOW_TRACKING_URI")

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        if self._embedded():
            Path(self.root).resolve().mkdir(parents=True, exist_ok=True)
            with _file_lock(_STORE_LOCK):
                client = MlflowClient(self.resolved_uri())
                client.search_experiments(max_results=1)  # creates the schema under the lock
            return client
        return MlflowClient(self.resolved_uri())

    def experiment_id(self, client: Any) -> str:
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            if found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return found.experiment_id
        location = None
        if self._embedded():
            location = (Path(self.root).resolve() / "mlartifacts").as_uri()
        with _file_lock(_STORE_LOCK):
            found = client.get_experiment_by_name(self.experiment)
            if found is not None:
                return found.experiment_id
            return client.create_experiment(
                self.experiment,
                artifact_location=location,
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )

    def run_url(self, run_id: str, experiment_id: str, ui: str = "http://127.0.0.1:5000") -> str:
        """The run's page in the MLflow UI (the embedded store's UI as the main job prints it)."""
        return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"

    @contextlib.contextmanager
    def start_run(
        self, run_name: str, tags: Mapping[str, Any] | None = None
    ) -> Iterator[MlflowTracker]:
        """Open a run; it ends FINISHED, or FAILED when the block raises."""
        client = self.client()
        experiment_id = self.experiment_id(client)
        run = client.create_run(
            experiment_id, run_name=run_name, tags={k: str(v) for k, v in (tags or {}).items()}
        )
        tracker = MlflowTracker(client, run.info.run_id, experiment_id)
        try:
            yield tracker
        except BaseException:
            client.set_terminated(run.info.run_id, status="FAILED")
            raise
        client.set_terminated(run.info.run_id, status="FINISHED")

    # -- model registry -----------------------------------------------------------------

    def register_model(
        self, name: str, run_id: str, artifact_path: str, tags: Mapping[str, Any]
    ) -> str:
        """A new version of registered model ``name`` from a run's artifact folder; its number."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        with _file_lock(_STORE_LOCK):
            try:
                client.get_registered_model(name)
            except MlflowException:
                client.create_registered_model(name)
        source = client.get_run(run_id).info.artifact_uri
        source = f"{source}/{artifact_path}" if artifact_path else source
        version = client.create_model_version(
            name, source=source, run_id=run_id, tags={k: str(v) for k, v in tags.items()}
        )
        return str(version.version)

    def model_versions(self, name: str) -> list[Any]:
        """Every version of a registered model (none when it is not registered)."""
        return list(self.client().search_model_versions(f"name='{name}'"))

    def alias_version(self, name: str, alias: str) -> Any | None:
        """The version an alias points to, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(name, alias)
        except MlflowException:
            return None

    def download_version_files(
        self, version: Any, names: Sequence[str], into: Path, optional: Sequence[str] = ()
    ) -> Path:
        """Files ``names`` (and those of ``optional`` the run has) of a registered version's
        run, artifacts at the run's root, into folder ``into`` (written under a temporary
        name, then renamed); ``into``.

        Raises:
            FileNotFoundError: the run lacks one of ``names`` (names the version and file).
        """
        into = Path(into)
        if all((into / n).is_file() for n in names):
            return into
        client = self.client()
        present = {a.path for a in client.list_artifacts(version.run_id)}
        missing = [n for n in names if n not in present]
        if missing:
            raise FileNotFoundError(
                f"registered model {version.name} version {version.version}: its run "
                f"{version.run_id} has no artifact {missing[0]}"
            )
        into.parent.mkdir(parents=True, exist_ok=True)
        with atomic_dir(into) as tmp:
            for name in [*names, *(n for n in optional if n in present)]:
                client.download_artifacts(version.run_id, name, str(tmp))
        return into

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(name, alias, version)

    def tag_version(self, name: str, version: str, tags: Mapping[str, Any]) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, str(value))


# ---------------------------------------------------------------------------------------
# DVC


#: repos this process has already initialised (saves a dvc call per recorded output)
_READY_REPOS: set[tuple[Path, str]] = set()


def _address(stage: Any, repo_path: Path) -> str:
    """A stage's DVC target as seen from the repo root (``name``, ``sub/dvc.yaml:name``
    or ``data.dvc``), whatever the current directory is."""
    rel = os.path.relpath(stage.path, repo_path)
    if not getattr(stage, "cmd", None):
        return rel  # a .dvc file
    return stage.name if rel == "dvc.yaml" else f"{rel}:{stage.name}"


def _git_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


class DvcResource(dg.ConfigurableResource):
    """The project's DVC repo (where ``dvc.yaml`` lives) and its default local remote.

    Changes go through the ``dvc`` command line run in the repo (the supported
    interface); reading stages and recorded hashes uses DVC's Python index.
    """

    repo_dir: str = "."
    remote_dir: str = ""

    def repo_path(self) -> Path:
        return Path(self.repo_dir).resolve()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # DVC's own repo lock fails fast when another process holds it; steps of the
        # multiprocess executor record outputs concurrently, so they queue here instead.
        digest = hashlib.sha1(str(self.repo_path()).encode()).hexdigest()[:12]
        with _file_lock(Path(tempfile.gettempdir()) / f"vec2face-dvc-{digest}.lock"):
            yield

    def _dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, DVC_NO_ANALYTICS="1")
        done = subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=self.repo_path(),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"dvc {' '.join(args)} failed in {self.repo_path()}: "
                f"{(done.stderr or done.stdout).strip()}"
            )
        return done

    def ensure_repo(self) -> Path:
        """``dvc init`` when the project has no ``.dvc`` yet; analytics off; local remote.

        Git-tracked projects get a normal repo (``--subdir`` below a Git root); others
        a ``--no-scm`` one. Returns the repo path.
        """
        repo_path = self.repo_path()
        if (repo_path, self.remote_dir) in _READY_REPOS:
            return repo_path
        with self._locked():
            if not (repo_path / ".dvc").is_dir():
                git = _git_root(repo_path)
                mode = "--no-scm" if git is None else ("--subdir" if git != repo_path else None)
                self._dvc("init", "-q", *([mode] if mode else []))
                self._dvc("config", "core.analytics", "false")
            if self.remote_dir and self._dvc("remote", "default", check=False).returncode != 0:
                remote = Path(self.remote_dir).resolve()
                remote.mkdir(parents=True, exist_ok=True)
                # an absolute, machine-specific path: .dvc/config.local, which Git ignores
                self._dvc("remote", "add", "--local", "-d", "local", str(remote))
        _READY_REPOS.add((repo_path, self.remote_dir))
        return repo_path

    def _out_owner(self, path: Path) -> tuple[Any, Any] | tuple[None, None]:
        from dvc.repo import Repo

        with Repo(str(self.repo_path()), uninitialized=True) as repo:
            for stage in repo.index.stages:
                for out in stage.outs:
                    if Path(out.fs_path).resolve() == path:
                        return stage, out
        return None, None

    def record(self, path: str | Path) -> str:
        """Put ``path`` in the DVC cache and return its DVC md5.

        When a ``dvc.yaml`` stage outputs ``path``, the stage is committed
        (``dvc commit -f``: deps, params and outs go to ``dvc.lock`` as if ``dvc repro``
        had made them); otherwise ``path`` is tracked with ``dvc add``.
        """
        path = Path(path).resolve()
        if not path.exists():
            raise FileNotFoundError(f"cannot record a missing output in DVC: {path}")
        self.ensure_repo()
        with self._locked():
            stage, _ = self._out_owner(path)
            if stage is not None and stage.cmd:  # a dvc.yaml stage
                self._dvc("commit", "-f", "-q", _address(stage, self.repo_path()))
            else:
                self._dvc("add", "-q", os.path.relpath(path, self.repo_path()))
        found = self.recorded_hash(path)
        if found is None:
            raise RuntimeError(f"DVC recorded no hash for {path}")
        return found

    def recorded_hash(self, path: str | Path) -> str | None:
        """The md5 ``dvc.lock`` or the ``.dvc`` file holds for ``path`` (None: not tracked)."""
        if not (self.repo_path() / ".dvc").is_dir():
            return None
        _, out = self._out_owner(Path(path).resolve())
        if out is None or not out.hash_info:
            return None
        return str(out.hash_info.value)

    def stage_for(self, path: str | Path) -> str | None:
        """The ``dvc.yaml`` stage (or ``.dvc`` file) that outputs ``path``."""
        stage, _ = self._out_owner(Path(path).resolve())
        return None if stage is None else _address(stage, self.repo_path())

    def status(self) -> dict[str, Any]:
        """``dvc status`` of the workspace: empty when every stage and output is recorded."""
        with self._locked():
            return json.loads(self._dvc("status", "--json").stdout or "{}")

    def push(self) -> None:
        """``dvc push`` to the default remote."""
        with self._locked():
            self._dvc("push", "-q")


def stage_graph(repo_dir: str | Path) -> dict[str, set[str]]:
    """``dvc.yaml``'s stages and, for each, the stages producing its data dependencies."""
    from dvc.repo import Repo

    with Repo(str(repo_dir), uninitialized=True) as repo:
        stages = [s for s in repo.index.stages if s.cmd]  # pipeline stages, not .dvc files
        root = Path(repo_dir).resolve()
        producer = {Path(o.fs_path).resolve(): _address(s, root) for s in stages for o in s.outs}
        graph: dict[str, set[str]] = {}
        for stage in stages:
            graph[_address(stage, root)] = {
                producer[Path(d.fs_path).resolve()]
                for d in stage.deps
                if Path(d.fs_path).resolve() in producer
            }
    return graph
