"""The toy zoo's models as Dagster assets (group ``zoo``, job ``build_zoo``).

Each asset trains one zoo model from the toy world with fixed seeds through
:func:`vec2face.zoo.build.build` (what ``vec2face zoo build NAME`` runs) and writes it into
the zoo (``$VEC2FACE_ZOO``, else the package's) only when its headline figure improves.
The main chain does not depend on these assets: it loads the shipped zoo, as the real path
loads pretrained weights.
"""

import dagster as dg

from assets_defs.resources import PipelinePaths
from vec2face.zoo.build import build
from vec2face.zoo.store import ZOO_NAMES

GROUP = "zoo"

#: the zoo models a zoo model is built from (the generator learns from the zoo teacher's
#: features through the zoo's perceptual trunk and is scored by the zoo judge)
ZOO_DEPS = {"generator": ("teacher", "judge", "perceptual")}

#: folder under the output root for the zoo's rendered pools and training runs (reused)
WORK = "zoo_work"


def _zoo_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"zoo_{name}",
        group_name=GROUP,
        deps=[f"zoo_{d}" for d in ZOO_DEPS.get(name, ())],
        kinds={"pytorch", "safetensors"},
        description=f"The toy zoo's '{name}', trained from the toy world with fixed seeds "
        f"(vec2face zoo build {name}); replaces the shipped one only when its figures improve.",
    )
    def _asset(context: dg.AssetExecutionContext, paths: PipelinePaths) -> dg.MaterializeResult:
        result = build(
            name,
            paths.read_params(),
            paths.output(WORK),
            command=f"dagster asset zoo_{name} (vec2face zoo build {name} --params "
            f"{paths.params_path().name})",
            progress=False,
        )
        context.log.info(f"zoo_{name}: {result.reason}")
        meta = result.manifest
        metadata = {
            "written": result.written,
            "reason": result.reason,
            "version": meta["version"],
            "sha256": meta["sha256"] if result.written else "",
            **{f"heldout_{k}": v for k, v in meta["figures"].items()},
        }
        if result.previous:
            metadata.update({f"previous_{k}": v for k, v in result.previous.items()})
        return dg.MaterializeResult(metadata=metadata)

    return _asset


zoo_assets = [_zoo_asset(name) for name in ZOO_NAMES]
ZOO = dg.AssetSelection.groups(GROUP)
