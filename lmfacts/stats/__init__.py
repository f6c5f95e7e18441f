"""Pure-numpy statistics for the lmfacts claims (no torch, no model).

Every function accepts float32/float64 array-likes, computes in float64, and raises ``ValueError``
naming the offending argument on bad input; data the statistic cannot judge (too few values, no
spread, zeros where logs are taken) raise the subclass :class:`DegenerateSample`, which a claim may
catch to exclude that one sample with its reason. Results are frozen dataclasses with ``to_dict()``.

Modules: :mod:`.growth` (RN-1/3/5/6/7), :mod:`.moments` (RS-1, BF-3), :mod:`.gaussianity`
(BF-1/3/4/6), :mod:`.spectrum` (BF-7/8), :mod:`.overlap` (BF-2), :mod:`.bos` (RN-2),
:mod:`.frobenius` (RN-8), :mod:`.outliers` (RS-2), :mod:`.massive` (MA-1…4), :mod:`.sinks`
(AS-1, AS-2), :mod:`.logit_lens` (LL-1, LL-2).
"""

from ._validation import DegenerateSample
from .bos import BosAnomaly, bos_anomaly
from .frobenius import (
    FrobeniusCheck,
    frobenius_identity_error,
    frobenius_sq,
    mean_sq_norm_of_random_products,
)
from .gaussianity import (
    GaussianityVerdict,
    TailComparison,
    bulk_ks_distance,
    expected_max_abs_z,
    gaussian_with_outliers,
    hill_tail_index,
    ks_sampling_bound,
    max_abs_z,
    outlier_excess,
    robust_standardise,
    tail_comparison,
)
from .growth import (
    CurvatureFit,
    GrowthFit,
    fit_growth_rate,
    growth_curvature,
    mean_curve,
    per_layer_rates,
    two_point_rate,
)
from .logit_lens import (
    LogitLens,
    LogitLensAccumulator,
    holds_from,
    kl_to_final,
    logit_lens_stats,
    sample_positions,
    top1_agreement,
)
from .massive import (
    BiasAblation,
    LogAbsHistogram,
    MassiveAccumulator,
    MassiveActivations,
    bias_ablation_effect,
    massive_activations,
    position_classes,
)
from .moments import (
    MomentAccumulator,
    MomentSummary,
    kurtosis,
    kurtosis_from_moments,
    power_sums,
    random_rotation,
)
from .outliers import OutlierShare, feature_maxima, outlier_feature_share, outlier_feature_share_abs
from .overlap import Consistency, chance_overlap, consistency_across, top_k_dims, top_k_overlap
from .sinks import (
    SinkAccumulator,
    SinkStats,
    counted_queries,
    key_importance,
    sink_mass,
    sink_stats,
    top_key_hits,
)
from .spectrum import (
    PowerLawFit,
    SpectrumComparison,
    compare_to_marchenko_pastur,
    default_rank_range,
    eigvals_to_singular,
    fit_power_law,
    marchenko_pastur_singular_values,
    zero_below_floor,
)

__all__ = [
    "BosAnomaly",
    "bos_anomaly",
    "FrobeniusCheck",
    "frobenius_identity_error",
    "frobenius_sq",
    "mean_sq_norm_of_random_products",
    "GaussianityVerdict",
    "TailComparison",
    "bulk_ks_distance",
    "expected_max_abs_z",
    "gaussian_with_outliers",
    "hill_tail_index",
    "ks_sampling_bound",
    "max_abs_z",
    "outlier_excess",
    "robust_standardise",
    "tail_comparison",
    "CurvatureFit",
    "GrowthFit",
    "fit_growth_rate",
    "growth_curvature",
    "mean_curve",
    "per_layer_rates",
    "two_point_rate",
    "MomentAccumulator",
    "MomentSummary",
    "kurtosis",
    "kurtosis_from_moments",
    "power_sums",
    "random_rotation",
    "OutlierShare",
    "feature_maxima",
    "outlier_feature_share",
    "outlier_feature_share_abs",
    "Consistency",
    "chance_overlap",
    "consistency_across",
    "top_k_dims",
    "top_k_overlap",
    "PowerLawFit",
    "SpectrumComparison",
    "compare_to_marchenko_pastur",
    "default_rank_range",
    "eigvals_to_singular",
    "fit_power_law",
    "marchenko_pastur_singular_values",
    "zero_below_floor",
    "DegenerateSample",
    "LogitLens",
    "LogitLensAccumulator",
    "holds_from",
    "kl_to_final",
    "logit_lens_stats",
    "sample_positions",
    "top1_agreement",
    "BiasAblation",
    "LogAbsHistogram",
    "MassiveAccumulator",
    "MassiveActivations",
    "bias_ablation_effect",
    "massive_activations",
    "position_classes",
    "SinkAccumulator",
    "SinkStats",
    "counted_queries",
    "key_importance",
    "sink_mass",
    "sink_stats",
    "top_key_hits",
]
