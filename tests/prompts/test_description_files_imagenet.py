"""Checks the ImageNet class data files and the ImageNet concept descriptions.

What this checks:
- ``imagenet_wnids.txt``: 1000 unique, well-formed, sorted wnids, as many as
  ``open_clip.IMAGENET_CLASSNAMES`` (so line i is class index i), with the
  known first/last classes (tench, toilet paper).
- ``imagenet_a_wnids.txt`` / ``imagenet_r_wnids.txt``: 200 unique, sorted
  wnids each, all in the 1k list.
- ``drm_mm/prompts/imagenet.json``: keys are exactly the open_clip class
  names, with names that occur twice keyed as ``"<name> [<wnid>]"``; every
  value is a non-empty list of non-empty strings; no description is used
  twice; none is truncated by the CLIP tokenizer (77-token context).
- A lexical context check: on a fixed sample (all animal classes plus some
  objects) no description contains a context word such as "background" or
  "habitat".

What it cannot check: whether a description is visually correct, whether it
separates a class from its neighbours, or context mentioned in words not on
the list. That needs a human reader (or a zero-shot run with real weights).
"""
from __future__ import annotations

import collections
import json
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
open_clip = pytest.importorskip('open_clip')

ROOT = Path(__file__).resolve().parents[2]
CLASS_DIR = ROOT / 'drm_mm' / 'datasets' / 'class_names'
JSON_PATH = ROOT / 'drm_mm' / 'prompts' / 'imagenet.json'
WNID_RE = re.compile(r'^n\d{8}$')

# Words that describe where a thing is rather than what it looks like.
CONTEXT_WORDS = (
    'background', 'habitat', 'surroundings', 'in the wild', 'environment',
    'forest', 'jungle', 'savanna', 'meadow', 'grass', 'ocean', 'ocean floor',
    'seabed', 'underwater', 'reef', 'riverbank', 'shore', 'beach', 'perched',
    'swimming', 'lives in', 'found in', 'native to')
# Fixed sample: every animal class (indices 0-397) plus a few objects.
CONTEXT_SAMPLE = tuple(range(398)) + (
    403, 409, 417, 430, 472, 484, 510, 547, 576, 628, 693, 780, 833, 847)


def _read_wnids(name: str) -> list[str]:
    path = CLASS_DIR / name
    lines = path.read_text().splitlines()
    assert all(WNID_RE.match(w) for w in lines), f'{path}: malformed line'
    return lines


@pytest.fixture(scope='module')
def wnids() -> list[str]:
    return _read_wnids('imagenet_wnids.txt')


@pytest.fixture(scope='module')
def descriptions() -> dict[str, list[str]]:
    with open(JSON_PATH) as f:
        return json.load(f)


def _expected_keys(wnids: list[str]) -> list[str]:
    names = open_clip.IMAGENET_CLASSNAMES
    counts = collections.Counter(names)
    return [f'{n} [{w}]' if counts[n] > 1 else n for n, w in zip(names, wnids)]


def test_imagenet_wnids(wnids):
    assert len(wnids) == 1000 == len(open_clip.IMAGENET_CLASSNAMES)
    assert len(set(wnids)) == 1000
    assert wnids == sorted(wnids)
    assert wnids[0] == 'n01440764' and wnids[-1] == 'n15075141'


@pytest.mark.parametrize('name', ['imagenet_a_wnids.txt', 'imagenet_r_wnids.txt'])
def test_subset_wnids(name, wnids):
    subset = _read_wnids(name)
    assert len(subset) == 200 and len(set(subset)) == 200
    assert subset == sorted(subset)
    assert set(subset) <= set(wnids)
    assert 'n01498041' in subset  # stingray is in both ImageNet-A and -R


def test_json_keys(descriptions, wnids):
    expected = _expected_keys(wnids)
    assert len(set(expected)) == 1000
    assert set(descriptions) == set(expected), (
        f'{JSON_PATH}: missing {sorted(set(expected) - set(descriptions))[:5]}, '
        f'unexpected {sorted(set(descriptions) - set(expected))[:5]}')


def test_json_values(descriptions):
    seen: dict[str, str] = {}
    for key, texts in descriptions.items():
        assert isinstance(texts, list) and 1 <= len(texts) <= 2, key
        for text in texts:
            assert isinstance(text, str) and text.strip(), key
            assert text not in seen, f'{key!r} repeats the description of {seen.get(text)!r}'
            seen[text] = key


def test_no_tokenizer_truncation(descriptions):
    tokenizer = open_clip.get_tokenizer('ViT-B-16')
    keys = [k for k, v in descriptions.items() for _ in v]
    texts = [t for v in descriptions.values() for t in v]
    tokens = tokenizer(texts)
    assert tokens.shape[1] == 77
    # The last position is padding (0) unless the text filled the context.
    too_long = [k for k, last in zip(keys, tokens[:, -1].tolist()) if last != 0]
    assert not too_long, f'descriptions too long for CLIP: {too_long[:5]}'


def test_no_context_words_in_sample(descriptions, wnids):
    keys = _expected_keys(wnids)
    pattern = re.compile(
        r'\b(' + '|'.join(re.escape(w) for w in CONTEXT_WORDS) + r')\b')
    hits = {}
    for idx in CONTEXT_SAMPLE:
        for text in descriptions[keys[idx]]:
            match = pattern.search(text.lower())
            if match:
                hits[keys[idx]] = match.group(0)
    assert not hits, f'context words in descriptions: {hits}'
