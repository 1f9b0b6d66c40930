"""Generation: identity vectors, their intra-class variation, and the HSFace datasets."""

from vec2face.generation.identities import (
    IdentitiesConfig,
    PCAPrior,
    SamplingInfo,
    draw_candidates,
    fit_pca_prior,
    make_identities,
    max_pairwise_cosine,
    sample_identities,
    save_identities,
)
from vec2face.generation.variation import (
    DEFAULT_PROPORTIONS,
    DEFAULT_SIGMAS,
    intra_class_batch,
    intra_class_vectors,
    sigma_counts,
    variation_rng,
)

__all__ = [
    "DEFAULT_PROPORTIONS",
    "DEFAULT_SIGMAS",
    "IdentitiesConfig",
    "PCAPrior",
    "SamplingInfo",
    "draw_candidates",
    "fit_pca_prior",
    "intra_class_batch",
    "intra_class_vectors",
    "make_identities",
    "max_pairwise_cosine",
    "sample_identities",
    "save_identities",
    "sigma_counts",
    "variation_rng",
]
