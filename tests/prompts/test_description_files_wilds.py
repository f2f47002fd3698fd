"""Checks the shipped WILDS class-name table and concept-description files.

Covers ``drm_mm/datasets/class_names/iwildcam_categories.csv``,
``drm_mm/prompts/iwildcam.json`` and ``drm_mm/prompts/fmow.json``, read with
plain ``csv``/``json`` so the files are validated independently of the loader.

What these tests check: the table's shape and uniqueness, that each JSON is
keyed by exactly the expected class names, that descriptions are non-empty,
distinct across classes and fit CLIP's 77-token context, and a keyword-level
guard against context cues (see the two ``*_context_*`` tests).

What they cannot check: whether a description is zoologically or visually
correct, whether it really separates look-alike classes for CLIP, or context
expressed in words outside the small lists below (e.g. "perched on a branch").
Those need human review or an embedding-level probe.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IWILDCAM_CSV = REPO / 'drm_mm' / 'datasets' / 'class_names' / 'iwildcam_categories.csv'
IWILDCAM_JSON = REPO / 'drm_mm' / 'prompts' / 'iwildcam.json'
FMOW_JSON = REPO / 'drm_mm' / 'prompts' / 'fmow.json'

NUM_IWILDCAM_CLASSES = 182
CLIP_CONTEXT_LENGTH = 77
# Background/context words that must not appear in any iWildCam description.
# Matched as case-insensitive substrings, so "grassy" or "forests" also count.
IWILDCAM_CONTEXT_WORDS = ('forest', 'jungle', 'savanna', 'grass', 'background', 'habitat',
                          'night', 'daytime', 'tree trunk', 'ground', 'field', 'surroundings')
# Phrases that would make a site's surroundings the lead cue of an FMoW
# description; forbidden in the first clause (text before the first comma).
FMOW_LEADING_CONTEXT_PHRASES = ('surrounded by', 'near', 'next to', 'neighborhood', 'nearby')


def _read_table() -> list[dict[str, str]]:
    with IWILDCAM_CSV.open(newline='', encoding='utf-8') as f:
        return list(csv.DictReader(f))


def _read_json(path: Path) -> dict[str, list[str]]:
    with path.open(encoding='utf-8') as f:
        return json.load(f)


def _fmow_categories() -> list[str]:
    from wilds.datasets.fmow_dataset import categories
    return list(categories)


def test_iwildcam_table_has_182_unique_contiguous_rows() -> None:
    rows = _read_table()
    assert rows and list(rows[0]) == ['y', 'category_id', 'name', 'common_name']
    assert len(rows) == NUM_IWILDCAM_CLASSES
    assert [int(r['y']) for r in rows] == list(range(NUM_IWILDCAM_CLASSES))
    for column in ('category_id', 'name', 'common_name'):
        values = [r[column] for r in rows]
        assert len(set(values)) == len(values), f'duplicate values in column {column!r}'
    assert all(r['category_id'].isdigit() for r in rows)
    for r in rows:
        common = r['common_name']
        assert common and common == common.strip() and common == common.lower(), r


def test_iwildcam_json_is_keyed_by_common_names() -> None:
    expected = {r['common_name'] for r in _read_table()}
    assert set(_read_json(IWILDCAM_JSON)) == expected


def test_fmow_json_is_keyed_by_wilds_categories() -> None:
    categories = _fmow_categories()
    assert len(categories) == 62
    assert set(_read_json(FMOW_JSON)) == set(categories)


@pytest.mark.parametrize('path,min_n,max_n', [(IWILDCAM_JSON, 1, 2), (FMOW_JSON, 2, 3)],
                         ids=['iwildcam', 'fmow'])
def test_descriptions_are_nonempty_distinct_strings(path: Path, min_n: int, max_n: int) -> None:
    owner: dict[str, str] = {}
    for cls, descriptions in _read_json(path).items():
        assert isinstance(descriptions, list) and min_n <= len(descriptions) <= max_n, cls
        for text in descriptions:
            assert isinstance(text, str) and text.strip() == text and text, (cls, text)
            assert text not in owner, f'{text!r} used by both {owner.get(text)!r} and {cls!r}'
            owner[text] = cls


@pytest.mark.parametrize('path', [IWILDCAM_JSON, FMOW_JSON], ids=['iwildcam', 'fmow'])
def test_descriptions_fit_clip_context(path: Path) -> None:
    open_clip = pytest.importorskip('open_clip')
    tokenizer = open_clip.get_tokenizer('ViT-B-16')  # bundled BPE vocab, no network
    for cls, descriptions in _read_json(path).items():
        for text in descriptions:
            n_tokens = len(tokenizer.encode(text)) + 2  # + start and end tokens
            assert n_tokens < CLIP_CONTEXT_LENGTH, (cls, n_tokens, text)


def test_iwildcam_descriptions_have_no_context_words() -> None:
    """Every iWildCam description (all classes, not a sample) avoids the list."""
    for cls, descriptions in _read_json(IWILDCAM_JSON).items():
        for text in descriptions:
            hits = [w for w in IWILDCAM_CONTEXT_WORDS if w in text.lower()]
            assert not hits, f'{cls!r}: context word(s) {hits} in {text!r}'


def test_fmow_descriptions_do_not_lead_with_surroundings() -> None:
    for cls, descriptions in _read_json(FMOW_JSON).items():
        for text in descriptions:
            first_clause = text.lower().split(',')[0]
            hits = [p for p in FMOW_LEADING_CONTEXT_PHRASES
                    if re.search(r'\b' + re.escape(p) + r'\b', first_clause)]
            assert not hits, f'{cls!r}: first clause leads with surroundings {hits}: {text!r}'
