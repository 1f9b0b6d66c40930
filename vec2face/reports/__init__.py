"""Dataset-quality reports: noise, genuine/impostor separation, identity leakage, plots.

Metrics (:mod:`.metrics`) are pure functions on feature arrays; the exact blocked
similarity search they rely on lives in :mod:`.similarity`; :mod:`.plots` draws the
comparison figures of the Vec2Face paper (Figures 4-6) for one or several datasets.
"""

from vec2face.reports.metrics import (
    EqualErrorRate,
    GenuineImpostor,
    IdentityCenters,
    IdentityLeakage,
    InterClassNoise,
    IntraClassNoise,
    RateComparison,
    compare_rates,
    distribution_overlap,
    equal_error_rate,
    genuine_impostor,
    identity_centers,
    identity_leakage,
    identity_leakage_stream,
    inter_class_noise,
    intra_class_noise,
)
from vec2face.reports.plots import (
    plot_age,
    plot_distributions,
    plot_genuine_impostor,
    plot_inter_class_similarity,
    plot_intra_class_similarity,
    plot_leakage_similarity,
    plot_pose,
)
from vec2face.reports.similarity import (
    max_cosine_blocked,
    max_inner_product_blocked,
    normalize_rows,
)

__all__ = [
    "EqualErrorRate",
    "GenuineImpostor",
    "IdentityCenters",
    "IdentityLeakage",
    "InterClassNoise",
    "IntraClassNoise",
    "RateComparison",
    "compare_rates",
    "distribution_overlap",
    "equal_error_rate",
    "genuine_impostor",
    "identity_centers",
    "identity_leakage",
    "identity_leakage_stream",
    "inter_class_noise",
    "intra_class_noise",
    "max_cosine_blocked",
    "max_inner_product_blocked",
    "normalize_rows",
    "plot_age",
    "plot_distributions",
    "plot_genuine_impostor",
    "plot_inter_class_similarity",
    "plot_intra_class_similarity",
    "plot_leakage_similarity",
    "plot_pose",
]
