"""Attribute estimators (yaw/pitch/roll, age, quality) for AttrOP and dataset reports.

The toy estimator is trained on labelled toy faces; the real adapters (6DRepNet pose,
MagFace quality) load their published weights when configured. All share
:class:`AttributeEstimator`: a differentiable module on (N, 3, 112, 112) images in
[-1, 1] returning ``{attribute: (N,) tensor}``, plus ``predict`` on uint8 images.
"""

from vec2face.attributes.estimators import (
    ATTRIBUTES,
    AttributeEstimator,
    AttributeEstimatorConfig,
    AttrNetConfig,
    CombinedAttributeEstimator,
    ToyAttributeNet,
    build_attribute_net,
    load_attribute_estimator,
    load_toy_estimator,
    predict_dataset,
    toy_quality_label,
)

__all__ = [
    "ATTRIBUTES",
    "AttrNetConfig",
    "AttributeEstimator",
    "AttributeEstimatorConfig",
    "CombinedAttributeEstimator",
    "ToyAttributeNet",
    "build_attribute_net",
    "load_attribute_estimator",
    "load_toy_estimator",
    "predict_dataset",
    "toy_quality_label",
]
