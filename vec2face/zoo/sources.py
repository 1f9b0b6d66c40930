"""Where each off-the-shelf model of the chain comes from: the zoo or a training step.

The paper's teacher, pose/quality estimators and LPIPS trunk are pretrained weights; the
embedded default takes the toy zoo's in their place (``zoo``), and ``train`` trains the
model inside the chain from its toy pool instead.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from vec2face.config import StepConfig, load_step_config

__all__ = ["SECTION", "ModelSourcesConfig", "ZooEntryRef", "model_sources", "zoo_ref"]

SECTION = "sources"

Source = Literal["zoo", "train"]


class ModelSourcesConfig(StepConfig):
    """The ``sources`` section of params.yaml: one source per off-the-shelf model."""

    teacher: Source = Field("zoo", description="the FR teacher: zoo weights or trained here")
    judge: Source = Field("zoo", description="the independent judge: zoo weights or trained here")
    attributes: Source = Field(
        "zoo", description="the pose/age/quality estimator: zoo weights or trained here"
    )


def model_sources(params: dict[str, Any] | None) -> ModelSourcesConfig:
    """The validated ``sources`` section (every model from the zoo when it is absent)."""
    return load_step_config(ModelSourcesConfig, SECTION, params or {})


class ZooEntryRef(StepConfig):
    """The identity of a zoo entry a step used (name, version, sha256): what a step's
    fingerprint holds, so that another zoo file reruns the step."""

    name: str = Field(description="zoo entry")
    version: int = Field(description="its version")
    sha256: str = Field(description="sha256 of its weights file")


def zoo_ref(name: str, root=None) -> ZooEntryRef:
    """The :class:`ZooEntryRef` of zoo entry ``name`` (its manifest must exist)."""
    from vec2face.zoo.store import manifest

    meta = manifest(name, root)
    return ZooEntryRef(name=name, version=meta["version"], sha256=meta["sha256"])
