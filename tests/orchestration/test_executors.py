"""The executor section: which executor the Definitions get, the Kubernetes configuration
dagster-k8s builds the shard pods from, and the cluster's instance config and Helm values."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.definitions import make_definitions
from orchestration.executors import (
    BrokerUnreachable,
    ExecutorSettings,
    check_broker,
    executor_settings,
    make_executor,
)
from vec2face.config import read_params
from vec2face.errors import ConfigError

PROJECT = Path(__file__).resolve().parents[2]
DEPLOY = PROJECT / "deploy"


def test_settings_default_to_multiprocess_and_the_environment_overrides_them():
    assert executor_settings({}, env={}).kind == "multiprocess"
    params = read_params(PROJECT / "params.yaml")
    assert executor_settings(params, env={}).kind == "multiprocess"
    settings = executor_settings(
        params, env={"VEC2FACE_EXECUTOR": "celery", "VEC2FACE_CELERY_BROKER": "redis://q:6379/0"}
    )
    assert (settings.kind, settings.celery.broker, settings.celery.backend) == (
        "celery", "redis://q:6379/0", "local"
    )
    with pytest.raises(ConfigError, match=r"'spark'; one of in_process, multiprocess, celery, k8s"):
        executor_settings({}, env={"VEC2FACE_EXECUTOR": "spark"})
    with pytest.raises(ConfigError, match="brokr"):
        executor_settings({"executor": {"celery": {"brokr": "x"}}}, env={})


@pytest.mark.parametrize("kind", ["in_process", "multiprocess", "celery", "k8s"])
def test_definitions_load_with_each_executor(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("VEC2FACE_EXECUTOR", kind)
    defs = make_definitions(str(tmp_path / "out"), str(PROJECT / "params.yaml"))
    for job in ("generate_hsface_shards", "prepare_generation"):
        assert defs.resolve_job_def(job).executor_def.name == kind
    assert not (tmp_path / "out").exists()  # loading starts nothing and writes nothing


def test_the_k8s_executor_config_validates_and_gives_each_shard_pod_a_gpu(tmp_path):
    from dagster._config import process_config
    from dagster_k8s import k8s_job_executor
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job
    from kubernetes.client import ApiClient

    k8s = executor_settings(read_params(PROJECT / "params.yaml"), env={}).k8s
    launcher = _cluster_run_launcher(tmp_path)
    processed = process_config(k8s_job_executor.config_schema.config_type, k8s)
    assert processed.success, processed.errors
    config = processed.value
    # the pieces dagster-k8s's step handler builds a step's Job from (launch_step)
    context = K8sContainerContext(
        namespace=config["job_namespace"], env_vars=config["env_vars"],
        volumes=config["volumes"], volume_mounts=config["volume_mounts"],
        image_pull_policy=config["image_pull_policy"],
    ).merge(K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
        config["per_step_k8s_config"]["hsface_dataset"])))
    job = construct_dagster_k8s_job(
        context.get_k8s_job_config(config["job_image"], launcher),
        ["dagster", "api", "execute_step"],
        "dagster-step-hsface-dataset", user_defined_k8s_config=context.run_k8s_config,
        component="step_worker",
    )
    manifest = ApiClient().sanitize_for_serialization(job)
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "vec2face-pipeline:0.1.0"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert {"name": "VEC2FACE_OUT", "value": "/data/outputs/tiny"} in container["env"]
    assert {"mountPath": "/data", "name": "data"} in container["volumeMounts"]
    # the instance config the pods read, from the cluster's dagster.yaml
    assert {"name": "DAGSTER_HOME", "value": "/opt/dagster/home"} in container["env"]
    claim = manifest["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]
    assert claim == {"claimName": "vec2face-data"}
    # the Dockerfile builds the image the executor names, with the instance config inside
    dockerfile = (PROJECT / "Dockerfile").read_text()
    assert "docker build -t vec2face-pipeline:0.1.0" in dockerfile
    assert "COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml" in dockerfile


def _cluster_run_launcher(tmp_path: Path):
    """deploy/dagster.yaml's K8sRunLauncher, built by dagster-k8s from its config (a kubeconfig
    naming a loopback API server that nothing here calls stands in for the cluster's)."""
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher

    shutil.copyfile(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "here", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "here", "context": {"cluster": "here", "user": "here"}}],
        "users": [{"name": "here", "user": {"token": "unused"}}],
    }))
    checked = process_config(K8sRunLauncher.config_type(), {
        **launcher["config"], "load_incluster_config": False, "kubeconfig_file": str(kubeconfig),
    })
    assert checked.success, checked.errors
    return K8sRunLauncher(**checked.value)


def test_the_cluster_instance_config_validates_against_dagster_and_dagster_k8s(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    launcher = _cluster_run_launcher(tmp_path)  # dagster's schema, then dagster-k8s's
    assert "VEC2FACE_EXECUTOR=k8s" in launcher.env_vars
    assert launcher.job_namespace == "vec2face"
    config, _ = dagster_instance_config(str(tmp_path))
    assert set(config["storage"]) == {"postgres"}
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] >= 2


def test_the_helm_values_run_the_project_image_and_code_location():
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    image = deployment["image"]
    k8s = executor_settings(read_params(PROJECT / "params.yaml"), env={}).k8s
    assert f"{image['repository']}:{image['tag']}" == k8s["job_image"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "orchestration.definitions"]
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["VEC2FACE_EXECUTOR"] == "k8s"
    assert f"VEC2FACE_OUT={env['VEC2FACE_OUT']}" in k8s["env_vars"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    queue = values["dagsterDaemon"]["runCoordinator"]
    assert queue["type"] == "QueuedRunCoordinator"
    assert queue["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] >= 2
    claim = deployment["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert k8s["volumes"][0]["persistent_volume_claim"]["claim_name"] == claim


def test_an_unreachable_broker_is_named_in_one_line():
    config = {"broker": "pyamqp://guest:secret@127.0.0.1:9//", "config_source": {}}
    with pytest.raises(BrokerUnreachable) as caught:
        check_broker(config, timeout=2)
    message = str(caught.value)
    assert message.startswith("celery broker amqp://guest:**@127.0.0.1:9// cannot be reached")
    assert "\n" not in message and "secret" not in message


def test_the_local_broker_is_folders_the_run_makes(tmp_path):
    executor = make_executor(ExecutorSettings(kind="celery"), tmp_path)
    assert isinstance(executor, dg.ExecutorDefinition) and executor.name == "celery"
    assert not (tmp_path / ".celery").exists()
    from orchestration.executors import CelerySettings, celery_config

    config = celery_config(CelerySettings(), tmp_path)
    check_broker(config)
    assert (tmp_path / ".celery" / "queue").is_dir()
    (tmp_path / "blocked").write_text("a file where the queue folder should be")
    options = config["config_source"]["broker_transport_options"]
    options["data_folder_in"] = str(tmp_path / "blocked" / "queue")
    with pytest.raises(BrokerUnreachable, match="celery broker filesystem:// cannot be reached"):
        check_broker(config)
