"""``IWildCamMetric``: the metrics of WILDS ``IWildCamDataset.eval``.

Accuracy, macro recall and macro-F1 are computed by wilds' own metric
classes; macro averages run over the labels **present in y_true** (sklearn
``labels=unique(y_true)``), which is why MMPretrain's ``SingleLabelMetric``
(averaging over all classes) gives a different number.
"""
from __future__ import annotations

from typing import Dict

import torch

from drm_mm.evaluation.metrics.sample_utils import LabelMetric
from drm_mm.registry import METRICS


def wilds_iwildcam_metrics(y_pred: torch.Tensor,
                           y_true: torch.Tensor) -> Dict[str, float]:
    """``{'acc', 'recall_macro', 'macro_f1'}`` as wilds computes them.

    ``acc`` = wilds ``acc_avg``, ``recall_macro`` = ``recall-macro_all``,
    ``macro_f1`` = ``F1-macro_all`` of ``IWildCamDataset.eval``.
    """
    from wilds.common.metrics.all_metrics import F1, Accuracy, Recall
    return {
        'acc': Accuracy().compute(y_pred, y_true)['acc_avg'],
        'recall_macro': Recall(average='macro').compute(
            y_pred, y_true)['recall-macro_all'],
        'macro_f1': F1(average='macro').compute(y_pred,
                                               y_true)['F1-macro_all'],
    }


@METRICS.register_module()
class IWildCamMetric(LabelMetric):
    """WILDS iWildCam metrics: ``acc``, ``recall_macro``, ``macro_f1``.

    Values are fractions in [0, 1], as wilds reports them. Needs
    ``pred_label`` and ``gt_label`` of each data sample only.
    """

    def compute_metrics(self, results: list) -> Dict[str, float]:
        data = torch.tensor(results, dtype=torch.long).reshape(-1, 2)
        return wilds_iwildcam_metrics(data[:, 0], data[:, 1])
