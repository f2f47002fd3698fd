"""Core-based soft labels: the registered component that owns the teacher
and the table, the pure normalisation functions, and the parts of the
soft-label pass that ``SoftLabelCacheHook`` calls (:mod:`.cache_key`,
:mod:`.table_cache`, :mod:`.table_storage`, :mod:`.sharded_pass`,
:mod:`.pipeline_view`)."""
from .core_soft_labels import (CoreSoftLabels, table_problem,
                               weights_digest)
from .normalization import (DEFAULT_TAU, NORMALIZATIONS, affinities,
                            check_normalization, class_bounds,
                            class_minmax_soft_labels, default_tau,
                            minmax_prob_soft_labels, minmax_soft_labels,
                            plain_soft_labels, soft_labels_from_affinities,
                            softmax_soft_labels)

__all__ = [
    'CoreSoftLabels', 'table_problem', 'weights_digest', 'NORMALIZATIONS',
    'DEFAULT_TAU', 'affinities', 'check_normalization', 'class_bounds',
    'class_minmax_soft_labels', 'default_tau', 'minmax_prob_soft_labels',
    'minmax_soft_labels',
    'plain_soft_labels', 'soft_labels_from_affinities',
    'softmax_soft_labels'
]
