"""Core-based soft labels: the registered component that owns the teacher
and the table, and the pure normalisation functions."""
from .core_soft_labels import (CoreSoftLabels, table_problem,
                               weights_digest)
from .normalization import (NORMALIZATIONS, affinities, check_normalization,
                            minmax_soft_labels, plain_soft_labels,
                            soft_labels_from_affinities, softmax_soft_labels)

__all__ = [
    'CoreSoftLabels', 'table_problem', 'weights_digest', 'NORMALIZATIONS',
    'affinities', 'check_normalization', 'minmax_soft_labels',
    'plain_soft_labels', 'soft_labels_from_affinities',
    'softmax_soft_labels'
]
