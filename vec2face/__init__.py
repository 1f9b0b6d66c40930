"""vec2face: synthetic face-recognition training data the Vec2Face way (ICLR 2025).

The package is a pure library: models, data formats, training, generation,
evaluation and the command line. Orchestration (Dagster), tracking (MLflow) and
data versioning (DVC) live outside it, in ``assets_defs/`` and ``orchestration/``.
"""

__version__ = "0.1.0"
