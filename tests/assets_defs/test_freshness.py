"""What reruns: a step's code version follows the params keys and code it reads, and a
changed key or code path reruns exactly the steps that read it and everything downstream."""

from __future__ import annotations

import copy
import hashlib

import dagster as dg
import pytest
from pydantic import BaseModel

from assets_defs import versions as versions_module
from assets_defs import with_code_versions
from assets_defs.freshness import (
    Provenance,
    data_version,
    is_current,
    last_materialization,
    reused_result,
)
from assets_defs.steps import STEPS, Step, chain_steps
from assets_defs.versions import code_digest, code_paths, param_value
from tests.orchestration.conftest import PROJECT
from vec2face.config import read_params

PARAMS = read_params(PROJECT / "params.yaml")
#: the default chain, and the one that trains every off-the-shelf model itself
CHAINS = {
    "zoo": chain_steps(PARAMS),
    "train": chain_steps(
        {**PARAMS, "sources": {"teacher": "train", "judge": "train", "attributes": "train"}}
    ),
}


def _changed(params: dict, key: str) -> dict:
    """``params`` with the value of the dotted ``key`` replaced."""
    params = copy.deepcopy(params)
    *parents, last = key.split(".")
    node = params
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = {"changed": repr(node.get(last))}
    return params


def _reads(step: Step, key: str) -> bool:
    """Whether ``step`` reads ``key``, a key inside it or the section holding it."""
    return any(key == k or key.startswith(f"{k}.") or k.startswith(f"{key}.") for k in step.params)


@pytest.mark.parametrize("source", sorted(CHAINS))
def test_code_version_follows_every_params_key_a_step_reads_and_no_other(source):
    steps = CHAINS[source]
    keys = {k for s in steps.values() for k in s.params} | {"expectations", "zoo_generator"}
    for name, step in steps.items():
        base = step.code_version(PARAMS)
        assert base == step.code_version(copy.deepcopy(PARAMS)), name
        for key in keys:
            moved = step.code_version(_changed(PARAMS, key)) != base
            assert moved == _reads(step, key), (name, key)


def test_every_step_declares_keys_params_yaml_has_and_code_that_exists():
    for source, steps in CHAINS.items():
        for name, step in steps.items():
            for key in step.params:
                param_value(PARAMS, key)  # raises naming the key
            assert step.code, name
            for path in step.code:
                assert (PROJECT / path).exists(), (name, path)
            for module in step.library:  # the step's own entry modules are in its code
                parts = module.split(".")
                assert any(p in step.code for p in (f"{parts[0]}/{parts[1]}",
                                                    f"{parts[0]}/{parts[1]}.py")), (name, module)
    # what a profile reads: the presets it selects
    assert "vec2face/presets" in STEPS["fr_model"].code
    assert "vec2face/presets" not in STEPS["webface_subset"].code


def test_code_paths_follow_imports_and_code_digest_every_byte(tmp_path, monkeypatch):
    assert "vec2face/fr" in code_paths(("vec2face.fr.train",))
    assert "vec2face/generator" not in code_paths(("vec2face.fr.train",))
    with pytest.raises(ValueError, match="vec2face.nope"):
        code_paths(("vec2face.nope",))
    pkg = tmp_path / "vec2face" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(versions_module, "PROJECT", tmp_path)
    code_digest.cache_clear()
    base = code_digest(("vec2face/sub",))
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    code_digest.cache_clear()
    assert code_digest(("vec2face/sub",)) == base  # bytecode says nothing
    (pkg / "a.py").write_text("x = 2\n")
    code_digest.cache_clear()
    assert code_digest(("vec2face/sub",)) != base
    code_digest.cache_clear()


# -------------------------------------------------------------- reruns through Dagster


class _Settings(BaseModel):
    step: str


def _stub_assets(steps: dict[str, Step], params: dict, ran: list[str]) -> list:
    """An asset per step with the real keys, deps and code versions, deciding reuse as the
    step assets do; running one appends its name to ``ran``. A run's output is a hash of
    its code version and inputs (a rerun with a new code version makes new data)."""

    def stub(step: Step) -> dg.AssetsDefinition:
        @dg.asset(name=step.asset, deps=list(step.upstream))
        def _stub(context):
            inputs = {u: data_version(last_materialization(context.instance, u))
                      for u in step.inputs}
            now = Provenance.of(context, _Settings(step=step.asset), inputs)
            last = last_materialization(context.instance, step.asset)
            if is_current(last, now, lambda: data_version(last)):
                return reused_result(last)
            ran.append(step.asset)
            content = hashlib.sha256(f"{now.code_version}{sorted(inputs.items())}".encode())
            return dg.MaterializeResult(
                metadata={**now.metadata(), "reused": False},
                data_version=dg.DataVersion(content.hexdigest()),
            )

        return _stub

    return with_code_versions([stub(s) for s in steps.values()], steps, params)


def _downstream(steps: dict[str, Step], changed: set[str]) -> set[str]:
    """``changed`` and every step that reads, directly or not, one of their outputs."""
    found = set(changed)
    grew = True
    while grew:
        grew = False
        for name, step in steps.items():
            if name not in found and found & set(step.inputs):
                found.add(name)
                grew = True
    return found


def _materialize(steps, params, instance) -> list[str]:
    ran: list[str] = []
    result = dg.materialize(_stub_assets(steps, params, ran), instance=instance)
    assert result.success
    return ran


@pytest.mark.slow
def test_a_changed_key_or_code_path_reruns_its_readers_and_what_is_downstream(monkeypatch):
    steps = CHAINS["zoo"]
    instance = dg.DagsterInstance.ephemeral()
    assert set(_materialize(steps, PARAMS, instance)) == set(steps)
    assert _materialize(steps, PARAMS, instance) == []  # unchanged: every output reused

    params = PARAMS
    for key in sorted({k for s in steps.values() for k in s.params}):
        params = _changed(params, key)
        readers = {n for n, s in steps.items() if _reads(s, key)}
        ran = _materialize(steps, params, instance)
        assert set(ran) == _downstream(steps, readers), key
        assert len(ran) == len(set(ran))

    real_digest, edited = versions_module.code_digest, []
    monkeypatch.setattr(  # the code under each path in ``edited`` has changed since
        versions_module, "code_digest",
        lambda paths: real_digest(paths) + "".join(p for p in edited if p in paths),
    )
    for path in sorted({p for s in steps.values() for p in s.code}):
        edited.append(path)
        readers = {n for n, s in steps.items() if path in s.code}
        ran = _materialize(steps, params, instance)
        assert set(ran) == _downstream(steps, readers), path
