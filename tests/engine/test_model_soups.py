"""Tests of drm_mm/engine/model_soups.py: uniform and greedy soups."""
from collections import OrderedDict
from typing import List, Mapping

import pytest
import torch

from drm_mm.engine.model_soups import (greedy_soup, is_better_or_equal,
                                       uniform_soup)
from drm_mm.utils.checkpoint_utils import CheckpointMismatchError


def ingredient(value: float, step: int = 0) -> 'OrderedDict':
    return OrderedDict(w=torch.full((2, 3), float(value)),
                       b=torch.tensor([value, -value]),
                       steps=torch.tensor(step))


def test_uniform_soup_is_the_mean():
    states = [ingredient(v, step=i) for i, v in enumerate((1.0, 2.0, 6.0))]
    soup = uniform_soup(states)
    assert soup.selected == [0, 1, 2]
    assert torch.allclose(soup.state_dict['w'], torch.full((2, 3), 3.0))
    assert torch.allclose(soup.state_dict['b'], torch.tensor([3.0, -3.0]))
    assert soup.state_dict['steps'].item() == 0  # integers from the first
    assert soup.state_dict['w'].dtype == torch.float32


def test_uniform_soup_lazy_and_half():
    loads: List[int] = []

    def loader(i: int, v: float):
        def load() -> Mapping:
            loads.append(i)
            state = ingredient(v)
            return OrderedDict((k, t.half() if t.is_floating_point() else t)
                               for k, t in state.items())
        return load

    soup = uniform_soup([loader(0, 1.0), loader(1, 2.0)])
    assert loads == [0, 1]
    assert soup.state_dict['w'].dtype == torch.float16
    assert torch.equal(soup.state_dict['w'],
                       torch.full((2, 3), 1.5, dtype=torch.float16))


def test_uniform_soup_mismatch_names_ingredient_and_key():
    bad = ingredient(1.0)
    bad['w'] = torch.zeros(3, 3)
    with pytest.raises(CheckpointMismatchError) as info:
        uniform_soup([ingredient(1.0), bad], names=['a.pth', 'b.pth'])
    message = str(info.value)
    assert "'w'" in message and 'a.pth' in message and 'b.pth' in message
    missing = ingredient(1.0)
    del missing['b']
    with pytest.raises(CheckpointMismatchError, match="'b'"):
        uniform_soup([ingredient(1.0), missing])
    with pytest.raises(ValueError, match='no ingredients'):
        uniform_soup([])


def score_near(target: float):
    """Higher is better; best when the mean weight equals ``target``."""
    def evaluate(state: Mapping) -> float:
        return -abs(float(state['w'].mean()) - target)
    return evaluate


def test_greedy_soup_adds_only_non_worsening():
    # best when the soup's mean weight is 2.0
    values = [1.0, 2.5, 1.5, 9.0]
    soup = greedy_soup([ingredient(v) for v in values], score_near(2.0))
    # alone: 1.0 -> -1, 2.5 -> -0.5, 1.5 -> -0.5, 9 -> -7
    assert soup.scores == [-1.0, -0.5, -0.5, -7.0]
    # order: 1 (2.5), 2 (1.5, tie keeps given order), 0, 3
    # soup {2.5}; + 1.5 -> 2.0 (score 0, kept); + 1.0 -> 5/3 (worse);
    # + 9 -> 13/3 (worse)
    assert soup.selected == [1, 2]
    assert soup.soup_score == 0.0
    assert [h['accepted'] for h in soup.history] == [True, True, False,
                                                     False]
    assert torch.allclose(soup.state_dict['w'], torch.full((2, 3), 2.0))


def test_greedy_soup_keeps_equal_scores_and_uses_given_scores():
    calls: List[float] = []

    def flat(state: Mapping) -> float:
        calls.append(float(state['w'].mean()))
        return 1.0

    soup = greedy_soup([ingredient(1.0), ingredient(3.0)], flat,
                       scores=[0.5, 0.7])
    assert soup.selected == [1, 0]  # equal soup score: not a decrease
    assert calls == [2.0]  # only the candidate soup was evaluated
    assert torch.allclose(soup.state_dict['w'], torch.full((2, 3), 2.0))
    with pytest.raises(ValueError, match='2 ingredients'):
        greedy_soup([ingredient(1.0), ingredient(3.0)], flat, scores=[1.0])


def test_greedy_soup_rule_less():
    soup = greedy_soup([ingredient(v) for v in (4.0, 1.0, 0.5)],
                       lambda s: float(s['w'].mean()), rule='less')
    # lower is better: start at 0.5; + 1.0 -> 0.75 (worse); + 4 (worse)
    assert soup.selected == [2]
    assert torch.allclose(soup.state_dict['w'], torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match='rule'):
        greedy_soup([ingredient(1.0)], lambda s: 0.0, rule='max')


def test_greedy_soup_mismatch():
    bad = ingredient(1.0)
    bad['w'] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match="'w'"):
        greedy_soup([ingredient(1.0), bad], lambda s: 0.0, scores=[1, 0],
                    names=['good.pth', 'bad.pth'])


def test_is_better_or_equal():
    assert is_better_or_equal(1.0, 1.0) and is_better_or_equal(2, 1)
    assert not is_better_or_equal(0.5, 1.0)
    assert is_better_or_equal(0.5, 1.0, 'less')
