"""``L2SPLoss``: L2-SP, the starting point as the reference of the L2
penalty (Li, Grandvalet, Davoine, ICML 2018; docs/baselines.md).

    Ω(w) = α/2 · ‖w_S − w_S⁰‖² + β/2 · ‖w_new‖²

``w_S`` are the parameters that exist in the pre-trained model (pulled back
to their pre-trained values ``w_S⁰``), ``w_new`` the parameters the target
task adds (plain weight decay on those only).
"""
import math
import numbers
from typing import Iterable, Mapping, Optional, Union

import torch
from torch import nn

from drm_mm.registry import MODELS

#: Parameters by name, or an iterable of tensors (``new_params`` only).
ParamsLike = Union[Mapping[str, torch.Tensor], Iterable[torch.Tensor]]


def check_weight(owner: str, key: str, value) -> float:
    """``value`` as a finite float >= 0, or a one-line ValueError naming
    ``owner.key``."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value < 0):
        raise ValueError(f'{owner}.{key} must be a finite number >= 0, got '
                         f'{value!r}; set it in the config.')
    return float(value)


def squared_distance(params: Mapping[str, torch.Tensor],
                     reference_params: Mapping[str, torch.Tensor]
                     ) -> torch.Tensor:
    """``Σ_k ‖params[k] − reference_params[k]‖²`` in float32; the reference
    receives no gradient. Both mappings must hold the same names and
    shapes."""
    missing = sorted(set(params) - set(reference_params))
    if missing:
        raise KeyError(f'L2SPLoss: no pre-trained value for {missing[:3]} '
                       f'({len(missing)} in all); pass the pre-trained '
                       'model\'s named_parameters() as reference_params.')
    total = None
    for name, value in params.items():
        ref = reference_params[name]
        if ref.shape != value.shape:
            raise ValueError(f'L2SPLoss: {name!r} has shape '
                             f'{tuple(value.shape)} but its pre-trained value '
                             f'{tuple(ref.shape)}; the reference must be the '
                             'same architecture.')
        diff = value.float() - ref.detach().to(value.device, torch.float32)
        term = diff.pow(2).sum()
        total = term if total is None else total + term
    return total


@MODELS.register_module()
class L2SPLoss(nn.Module):
    """L2-SP: an L2 penalty towards the pre-trained weights.

    ``forward(params, reference_params, new_params)`` returns

        α/2 · Σ_{k ∈ params} ‖params[k] − reference_params[k]‖²
        + β/2 · Σ_{w ∈ new_params} ‖w‖²

    summed over every element (not averaged), as in the paper. The sums
    run in float32 whatever the parameters' dtype. The reference is
    detached, so only ``params`` and ``new_params`` receive gradients.

    α = 0.1 and β = 0.01 are the values of the first author's public
    training script; the penalty here covers every parameter the
    pre-trained model has (that code's all-parameter mode, not its default
    kernels-only run; docs/baselines.md says why). With L2-SP the
    optimizer's own weight decay must be 0 on the pre-trained parameters,
    or they are pulled both to w⁰ and to 0 (docs/baselines.md).

    Args:
        alpha (float): α, the weight of the pull towards the pre-trained
            values. Defaults to 0.1.
        beta (float): β, the weight decay of the new parameters.
            Defaults to 0.01.
    """

    def __init__(self, alpha: float = 0.1, beta: float = 0.01) -> None:
        super().__init__()
        self.alpha = check_weight('L2SPLoss', 'alpha', alpha)
        self.beta = check_weight('L2SPLoss', 'beta', beta)
        if self.alpha == 0 and self.beta == 0:
            raise ValueError('L2SPLoss: alpha and beta are both 0, the '
                             'penalty is always 0; set one of them > 0 or '
                             'leave L2SPLoss out of the config.')

    def forward(self,
                params: Mapping[str, torch.Tensor],
                reference_params: Mapping[str, torch.Tensor],
                new_params: Optional[ParamsLike] = None) -> torch.Tensor:
        """The penalty, a float32 scalar.

        Args:
            params (Mapping[str, Tensor]): the fine-tuned parameters that
                have a pre-trained value, by name.
            reference_params (Mapping[str, Tensor]): their pre-trained
                values under the same names (e.g. the frozen teacher's
                ``dict(named_parameters())``); extra names are ignored.
            new_params (Mapping[str, Tensor] | Iterable[Tensor], optional):
                the parameters the target task adds. Defaults to None
                (none).
        """
        if not params:
            raise ValueError('L2SPLoss: params is empty; pass the trainable '
                             'pre-trained parameters by name.')
        loss = self.alpha / 2 * squared_distance(params, reference_params)
        if new_params is not None:
            values = (new_params.values() if isinstance(new_params, Mapping)
                      else new_params)
            for value in values:
                loss = loss + self.beta / 2 * value.float().pow(2).sum()
        return loss
