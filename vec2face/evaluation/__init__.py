"""Evaluation: verification benchmarks (pure metrics) and the inference that feeds them."""

from vec2face.evaluation.embed import flip_sum_embeddings
from vec2face.evaluation.verification import (
    VerificationResult,
    check_pair_kinds,
    pair_distances,
    roc_curve,
    tar_at_far,
    verification_accuracy,
)

__all__ = [
    "VerificationResult",
    "check_pair_kinds",
    "flip_sum_embeddings",
    "pair_distances",
    "roc_curve",
    "tar_at_far",
    "verification_accuracy",
]
