"""The source-changed sensor: requests the downstream chain only for versions Dagster did not make."""

from __future__ import annotations

import dagster as dg

from assets_defs import all_assets
from orchestration.definitions import make_resources
from orchestration.sensors import webface_source_changed


def _evaluate(instance, resources, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return webface_source_changed.evaluate_tick(context)


def test_sensor_follows_the_dvc_hash_of_the_webface_source(micro_project):
    out = micro_project / "outputs" / "tiny"
    resources = make_resources(str(out), str(micro_project / "params.yaml"), str(micro_project))
    instance = dg.DagsterInstance.ephemeral()

    untracked = _evaluate(instance, resources)
    assert not untracked.run_requests and "not tracked" in untracked.skip_message

    pool = [a for a in all_assets if a.key == dg.AssetKey("webface_pool")]
    assert dg.materialize(pool, resources=resources, instance=instance).success
    own = _evaluate(instance, resources)
    recorded = resources["dvc"].recorded_hash(out / "world" / "webface")
    assert not own.run_requests and own.cursor == recorded  # Dagster made this version

    assert not _evaluate(instance, resources, cursor=recorded).run_requests

    # a new version of the source arrives outside Dagster (e.g. `dvc add` of new data)
    (out / "world" / "webface" / "00000" / "999.jpg").write_bytes(
        (out / "world" / "webface" / "00000" / "000.jpg").read_bytes())
    changed = resources["dvc"].record(out / "world" / "webface")
    result = _evaluate(instance, resources, cursor=recorded)
    assert changed != recorded and result.cursor == changed
    assert [r.run_key for r in result.run_requests] == [f"webface-source-{changed}"]
    assert result.run_requests[0].tags["vec2face/source_dvc_md5"] == changed
