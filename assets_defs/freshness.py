"""Whether a step's output is current: read from Dagster's own materialization records.

A materialization records the asset's code version (``dagster/code_version``: its params
values and code, :meth:`assets_defs.steps.Step.code_version`), its data version (the DVC
hash of the output) and, in its metadata, the DVC hashes of the outputs it read and a hash
of the validated settings. A step reruns unless its last materialization (of the same
partition) has the code version the asset has now, read the same input versions with the
same settings, and its output still has the recorded data version. Nothing else is kept:
no stamp files beside the outputs.

The settings hash covers what the params do not say: paths resolved under the run's output
root, a teacher's backbone read from its ``backbone.json``, the registry version a warm start
took, and params edited after the definitions were loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import BaseModel

#: a step's validated settings: one config, or several by name (a step reading two sections)
Settings = BaseModel | Mapping[str, BaseModel]

INPUTS_KEY = "input_versions"
SETTINGS_KEY = "settings_sha256"
CODE_VERSION_TAG = "dagster/code_version"
DATA_VERSION_TAG = "dagster/data_version"


def settings_dump(config: Settings) -> dict[str, Any]:
    """JSON-ready values of a config or of a name -> config mapping."""
    if isinstance(config, BaseModel):
        return config.model_dump(mode="json")
    return {name: cfg.model_dump(mode="json") for name, cfg in config.items()}


@dataclass(frozen=True)
class Provenance:
    """What a step's output is made of: code version, input versions, settings."""

    code_version: str | None
    inputs: Mapping[str, str]  # upstream asset -> the DVC hash of its output
    settings: str  # sha256 of the validated settings

    @classmethod
    def of(
        cls, context: dg.AssetExecutionContext, config: Settings, inputs: Mapping[str, str]
    ) -> Provenance:
        """The provenance the running step would give its output."""
        blob = json.dumps(settings_dump(config), sort_keys=True, default=str)
        return cls(
            context.assets_def.code_versions_by_key.get(context.asset_key),
            dict(sorted(inputs.items())),
            hashlib.sha256(blob.encode()).hexdigest(),
        )

    def metadata(self) -> dict[str, Any]:
        """The materialization metadata that records it (the code version is Dagster's tag)."""
        return {INPUTS_KEY: dg.MetadataValue.json(dict(self.inputs)), SETTINGS_KEY: self.settings}

    def made(self, materialization: dg.AssetMaterialization | None) -> bool:
        """Whether ``materialization`` was made from this provenance."""
        if materialization is None:
            return False
        recorded = materialization.metadata
        inputs = recorded.get(INPUTS_KEY)
        settings = recorded.get(SETTINGS_KEY)
        return (
            materialization.tags.get(CODE_VERSION_TAG) == self.code_version
            and inputs is not None
            and inputs.value == dict(self.inputs)
            and settings is not None
            and settings.value == self.settings
        )


def last_materialization(
    instance: dg.DagsterInstance, asset: str, partition: str | None = None
) -> dg.AssetMaterialization | None:
    """The latest materialization of ``asset`` (of its ``partition``), or None."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    return records[0].asset_materialization if records else None


def data_version(materialization: dg.AssetMaterialization) -> str | None:
    return materialization.tags.get(DATA_VERSION_TAG)


def is_current(
    materialization: dg.AssetMaterialization | None,
    now: Provenance,
    content_version: Callable[[], str | None],
) -> bool:
    """Whether the output ``materialization`` recorded is the one ``now`` would make and is
    still there: same provenance, and ``content_version()`` (the output's hash as it is now,
    None when absent; called only when the provenance matches) equal to its data version."""
    if not now.made(materialization):
        return False
    assert materialization is not None
    return content_version() == data_version(materialization)


def reused_result(materialization: dg.AssetMaterialization) -> dg.MaterializeResult:
    """The result of a step that reuses its output: the last materialization's metadata
    (its figures, paths, MLflow run) and data version, marked as reused."""
    metadata = {**materialization.metadata, "reused": dg.MetadataValue.bool(True)}
    return dg.MaterializeResult(
        metadata=metadata, data_version=dg.DataVersion(data_version(materialization) or "")
    )


__all__ = [
    "Provenance",
    "Settings",
    "data_version",
    "is_current",
    "last_materialization",
    "reused_result",
    "settings_dump",
]
