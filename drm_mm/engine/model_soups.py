"""Model soups: average the weights of several fine-tuned models of one
config (Wortsman et al., 2022).

*Uniform*: the mean of all ingredients. *Greedy*: ingredients sorted by
their own ID-validation score, each added to the soup when the score of the
averaged soup does not decrease. Floating-point tensors are averaged;
integer buffers and other entries come from the first ingredient (the best
one for a greedy soup). Ingredients may be state dicts or zero-argument
callables that load one, so only the running sum and one ingredient are in
memory at a time.
"""
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Union)

import torch

from drm_mm.utils.checkpoint_utils import check_compatible, is_float_tensor

Ingredient = Union[Mapping[str, Any], Callable[[], Mapping[str, Any]]]
RULES = ('greater', 'less')

__all__ = ['Ingredient', 'RULES', 'SoupResult', 'uniform_soup',
           'greedy_soup', 'is_better_or_equal']


@dataclass
class SoupResult:
    """A soup and how it was made.

    Attributes:
        state_dict: the averaged weights.
        selected: indices (into the ingredient list) in the soup, in the
            order they were added.
        scores: each ingredient's own score (greedy only; None if unused).
        soup_score: the validation score of the final soup (greedy only).
        history: one entry per greedy step: ``index``, ``score`` of the
            candidate soup, ``accepted``.
    """
    state_dict: 'OrderedDict[str, Any]'
    selected: List[int]
    scores: Optional[List[float]] = None
    soup_score: Optional[float] = None
    history: List[Dict[str, Any]] = field(default_factory=list)


def _name(names: Optional[Sequence[str]], i: int) -> str:
    return names[i] if names is not None else f'ingredient {i}'


def _materialise(ingredient: Ingredient) -> Mapping[str, Any]:
    value = ingredient() if callable(ingredient) else ingredient
    if not isinstance(value, Mapping):
        raise TypeError(f'a soup ingredient must be a state dict (or a '
                        f'callable returning one), got '
                        f'{type(value).__name__}.')
    return value


class _RunningSum:
    """Sum of floating-point tensors of several state dicts (at least
    float32), other entries from the first."""

    def __init__(self, first: Mapping[str, Any], name: str) -> None:
        self.reference = first
        self.reference_name = name
        self.count = 0
        self.total: 'OrderedDict[str, Any]' = OrderedDict()
        for key, value in first.items():
            if is_float_tensor(value):
                work = torch.promote_types(value.dtype, torch.float32)
                self.total[key] = torch.zeros(value.shape, dtype=work)
            else:
                self.total[key] = (value.detach().cpu().clone() if isinstance(
                    value, torch.Tensor) else value)

    def check(self, state: Mapping[str, Any], name: str) -> None:
        check_compatible(self.reference, state, self.reference_name, name)

    def add(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            if is_float_tensor(value):
                self.total[key] += value.detach().cpu().to(
                    self.total[key].dtype)
        self.count += 1

    def average(self, extra: Optional[Mapping[str, Any]] = None
                ) -> 'OrderedDict[str, Any]':
        """The mean so far, or the mean with ``extra`` added (not kept)."""
        count = self.count + (extra is not None)
        out = OrderedDict()
        for key, ref in self.reference.items():
            total = self.total[key]
            if not is_float_tensor(ref):
                out[key] = total
                continue
            if extra is not None:
                total = total + extra[key].detach().cpu().to(total.dtype)
            out[key] = (total / count).to(ref.dtype)
        return out


def uniform_soup(ingredients: Sequence[Ingredient],
                 names: Optional[Sequence[str]] = None) -> SoupResult:
    """The mean of all ingredients.

    Raises:
        CheckpointMismatchError: an ingredient differs from the first in
            keys or shapes (the message names both and the first key).
    """
    if not ingredients:
        raise ValueError('uniform_soup: no ingredients.')
    acc: Optional[_RunningSum] = None
    for i, ingredient in enumerate(ingredients):
        state = _materialise(ingredient)
        if acc is None:
            acc = _RunningSum(state, _name(names, i))
        else:
            acc.check(state, _name(names, i))
        acc.add(state)
        del state
    return SoupResult(state_dict=acc.average(),
                      selected=list(range(len(ingredients))))


def is_better_or_equal(new: float, old: float, rule: str = 'greater') -> bool:
    """``new`` does not make the metric worse under ``rule``."""
    if rule not in RULES:
        raise ValueError(f'rule must be one of {RULES}, got {rule!r}.')
    return new >= old if rule == 'greater' else new <= old


def greedy_soup(ingredients: Sequence[Ingredient],
                evaluate: Callable[[Mapping[str, Any]], float],
                scores: Optional[Sequence[float]] = None,
                rule: str = 'greater',
                names: Optional[Sequence[str]] = None,
                log: Optional[Callable[[str], None]] = None) -> SoupResult:
    """Greedy soup: best ingredient first, then each next-best one kept if
    the validation score of the soup does not get worse.

    Args:
        ingredients: state dicts or loaders of them.
        evaluate: validation score of a state dict.
        scores: each ingredient's own score, if already known (else each
            ingredient is evaluated first).
        rule: ``'greater'`` (higher is better) or ``'less'``.
        names: ingredient names for messages (e.g. paths).
        log: where progress lines go (default: nowhere).
    """
    if not ingredients:
        raise ValueError('greedy_soup: no ingredients.')
    if rule not in RULES:
        raise ValueError(f'rule must be one of {RULES}, got {rule!r}.')
    log = log or (lambda message: None)
    if scores is None:
        scores = []
        for i, ingredient in enumerate(ingredients):
            scores.append(float(evaluate(_materialise(ingredient))))
            log(f'greedy soup: {_name(names, i)} alone scores '
                f'{scores[-1]:.6g}')
    elif len(scores) != len(ingredients):
        raise ValueError(f'greedy_soup: {len(scores)} scores for '
                         f'{len(ingredients)} ingredients.')
    scores = [float(s) for s in scores]
    sign = -1.0 if rule == 'greater' else 1.0
    # stable: ties keep the given order
    order = sorted(range(len(ingredients)), key=lambda i: sign * scores[i])
    best = order[0]
    first = _materialise(ingredients[best])
    acc = _RunningSum(first, _name(names, best))
    acc.add(first)
    del first
    soup_score = scores[best]
    selected = [best]
    history = [dict(index=best, score=soup_score, accepted=True)]
    log(f'greedy soup: start with {_name(names, best)} ({soup_score:.6g})')
    for i in order[1:]:
        state = _materialise(ingredients[i])
        acc.check(state, _name(names, i))
        candidate = acc.average(extra=state)
        score = float(evaluate(candidate))
        del candidate
        accepted = is_better_or_equal(score, soup_score, rule)
        history.append(dict(index=i, score=score, accepted=accepted))
        log(f'greedy soup: + {_name(names, i)} -> {score:.6g} '
            f'({"kept" if accepted else "rejected"}; soup {soup_score:.6g})')
        if accepted:
            acc.add(state)
            selected.append(i)
            soup_score = score
        del state
    return SoupResult(state_dict=acc.average(), selected=selected,
                      scores=scores, soup_score=soup_score, history=history)
