"""Generation: identity vectors, their intra-class variation, AttrOP, and the HSFace datasets."""

from vec2face.hsface.attrop import AttrOPResult, AttrOPSettings, attrop, refine_identities
from vec2face.hsface.identities import (
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
from vec2face.hsface.variation import (
    DEFAULT_PROPORTIONS,
    DEFAULT_SIGMAS,
    intra_class_batch,
    intra_class_vectors,
    sigma_counts,
    variation_rng,
)

__all__ = [
    "AttrOPResult",
    "AttrOPSettings",
    "DEFAULT_PROPORTIONS",
    "DEFAULT_SIGMAS",
    "IdentitiesConfig",
    "PCAPrior",
    "SamplingInfo",
    "attrop",
    "draw_candidates",
    "fit_pca_prior",
    "intra_class_batch",
    "intra_class_vectors",
    "make_identities",
    "max_pairwise_cosine",
    "refine_identities",
    "sample_identities",
    "save_identities",
    "sigma_counts",
    "variation_rng",
]
