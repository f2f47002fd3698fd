"""``WRMTextPolicy``: how a training step makes the cd prototypes that
L_WRM trains, when the text tower trains.

Three ways, by the classifier's options ``wrm_text_grad``,
``wrm_text_refresh`` and ``wrm_text_classes``:

* exact (default): every cd prompt encoded with gradient each step;
* no gradient (``wrm_text_grad=False``): cd prototypes encoded without
  gradient, re-encoded every ``wrm_text_refresh`` steps;
* class subset (``wrm_text_classes=m``): the cd prompts of m classes S
  encoded with gradient, the others as without gradient. S is the
  ``ceil(m/2)`` classes of most p_c mass over the batch plus
  ``m - ceil(m/2)`` drawn uniformly from the rest (inclusion probability
  q); a drawn class's gradient is scaled by 1/q so that the text gradient
  is unbiased.
"""
from typing import Callable, Optional, Tuple

import torch

#: ``(classes, gradient scale)`` of a subset step (CPU tensors).
ClassSubset = Tuple[torch.Tensor, torch.Tensor]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class WRMTextPolicy:
    """The cd-prototype options of L_WRM, checked, with the subset draw and
    the no-gradient cache they need.

    Args:
        grad (bool): ``wrm_text_grad``: L_WRM trains the text tower
            through the cd prototypes. Defaults to True.
        refresh (int): ``wrm_text_refresh``: re-encode the no-gradient cd
            prototypes every this many training forward passes (a resumed
            run re-encodes at its first). Defaults to 1.
        classes (int, optional): ``wrm_text_classes``: m, the classes whose
            cd prompts get gradient each step (2 <= m <= num_classes;
            m = num_classes is the exact path). Defaults to None (exact).
        num_classes (int): the classifier's class count. Defaults to 0
            (no bound).
    """

    def __init__(self,
                 grad: bool = True,
                 refresh: int = 1,
                 classes: Optional[int] = None,
                 num_classes: int = 0) -> None:
        if not isinstance(grad, bool):
            raise ValueError(f'DRMClassifier.wrm_text_grad must be True or '
                             f'False, got {grad!r}.')
        if not _is_int(refresh) or refresh < 1:
            raise ValueError(f'DRMClassifier.wrm_text_refresh must be a '
                             f'positive integer (steps), got {refresh!r}.')
        if classes is not None and (not _is_int(classes) or classes < 2):
            raise ValueError(f'DRMClassifier.wrm_text_classes must be None '
                             f'or an integer >= 2 (classes whose cd prompts '
                             f'get gradient each step), got {classes!r}.')
        if classes is not None and num_classes and classes > num_classes:
            raise ValueError(f'DRMClassifier.wrm_text_classes={classes} '
                             f'exceeds the {num_classes} classes; set it to '
                             f'at most {num_classes} (the exact path) or '
                             f'None.')
        if classes is not None and not grad:
            raise ValueError('DRMClassifier.wrm_text_classes needs '
                             'wrm_text_grad=True (wrm_text_grad=False drops '
                             'the cd gradient of every class); set one of '
                             'them.')
        self.grad = grad
        self.refresh = refresh
        self.classes = classes
        self.num_classes = num_classes
        self._generator: Optional[torch.Generator] = None
        #: (training calls, cd prototypes) of the no-gradient cd path
        self._stale: Optional[Tuple[int, torch.Tensor]] = None

    def check_loss(self, erm: Optional[str], erm_prompts: str,
                   wrm_prompts: str) -> None:
        """Refuse a subset that the loss's prompt sets make pointless.

        Args:
            erm (str, optional): the ERM form, None when L_ERM is off.
            erm_prompts (str): L_ERM's prompt set.
            wrm_prompts (str): L_WRM's prompt set.
        """
        if self.classes is None:
            return
        if wrm_prompts != 'cd':
            raise ValueError(
                "DRMClassifier.wrm_text_classes applies to L_WRM's cd "
                "prompts; with loss.wrm_prompts='df' leave it None.")
        if erm == 'ce' and erm_prompts == 'cd':
            raise ValueError(
                "DRMClassifier.wrm_text_classes saves nothing with "
                "loss.erm='ce' and loss.erm_prompts='cd' (L_ERM encodes "
                "every cd prompt with gradient); leave it None.")

    def stale_cd(self, encode: Callable[[], torch.Tensor]) -> torch.Tensor:
        """cd prototypes without gradient: ``encode()`` every
        :attr:`refresh` calls, the last value in between."""
        calls, value = self._stale or (0, None)
        if value is None or calls % self.refresh == 0:
            value = encode()
        self._stale = (calls + 1, value)
        return value

    def subset(self, soft_labels: torch.Tensor) -> Optional[ClassSubset]:
        """The class subset S of this batch and each class's gradient scale
        (CPU): the ``ceil(m/2)`` classes of most p_c mass (scale 1), then
        ``m - ceil(m/2)`` drawn from the rest (scale 1/q). None on the exact
        path."""
        m = self.classes
        num_classes = soft_labels.size(1)
        if m is None or m >= num_classes:
            return None
        top_n = -(-m // 2)
        mass = soft_labels.detach().float().sum(dim=0).cpu()
        top = torch.topk(mass, top_n).indices
        others = torch.ones(num_classes, dtype=torch.bool)
        others[top] = False
        rest = others.nonzero().squeeze(1)
        drawn = self.draw(rest, m - top_n)
        q = (m - top_n) / rest.numel()
        scale = torch.cat([torch.ones(top_n), torch.full((drawn.numel(), ),
                                                         1.0 / q)])
        return torch.cat([top, drawn]), scale

    def draw(self, rest: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` of the classes ``rest`` drawn uniformly without
        replacement, by a CPU generator of the policy's own, seeded at its
        first use from ``torch.initial_seed()`` (the run's seed): the draws
        leave torch's global random stream (caption draws) as it is."""
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(
                torch.initial_seed())
        order = torch.randperm(rest.numel(), generator=self._generator)
        return rest[order[:n]]
