"""Tests of the toy CLIP: architecture config, caption corpus, concept
descriptions, and the cached pretraining (shortened settings)."""
from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from drm_mm.prompts import MissingDescriptionError
from projects.toy_world.toy_world import pretrain_clip as pc
from projects.toy_world.toy_world.caption_corpus import (
    CORE_PHRASES, CorpusSettings, batch_indices, build_corpus)
from projects.toy_world.toy_world.shapes import (
    BACKGROUND_KIND_WORDS, PALETTE, SHAPE_NAMES)
from projects.toy_world.toy_world.toy_world import WorldSettings

TINY_CORPUS = CorpusSettings(n_scenes=6, images_per_scene=8, seed=2)
TINY = pc.PretrainSettings(corpus=TINY_CORPUS, steps=3, batch_size=16,
                           warmup_steps=1)
TINY_WORLD = WorldSettings(n_train=8, n_id_val=8, n_id_test=16, n_val=16,
                           n_test=16, n_val_locations=2, n_test_locations=2)


def test_toy_arch_is_registered_and_builds() -> None:
    pc.register_toy_configs()
    assert 'drm-toy-rn' in open_clip.list_models()
    model, tokenizer = pc.build_toy_clip('drm-toy-rn')
    x = torch.zeros(2, 3, 32, 32)
    out = model(x, tokenizer(['a photo of a star.', 'a ring.']))
    assert out['image_features'].shape == out['text_features'].shape


def test_descriptions_cover_classes_and_stay_on_core_features() -> None:
    data = json.loads(pc.PROMPTS_FILE.read_text())
    assert set(data) == set(SHAPE_NAMES)
    tokenizer = open_clip.get_tokenizer('drm-toy-rn')
    context = pc.model_config('drm-toy-rn')['text_cfg']['context_length']
    scene_words = set(PALETTE) | set(BACKGROUND_KIND_WORDS.values()) | {
        'background', 'colour', 'color', 'scene'}
    for name, texts in data.items():
        assert texts and all(isinstance(t, str) and t for t in texts)
        for text in texts:
            words = set(re.findall(r'[a-z]+', text.lower()))
            others = (set(SHAPE_NAMES) - {name}) & words
            assert not others, f'{name}: {text!r} names {others}'
            assert not words & scene_words, f'{name}: {text!r}'
            # Fits the text tower without truncation (SOT + EOT included).
            n_tokens = int((tokenizer([text])[0] != 0).sum())
            assert n_tokens < context, text
    # Core descriptions tell classes apart: no two classes share one.
    flat = [t for texts in data.values() for t in texts]
    assert len(flat) == len(set(flat))


def test_toy_descriptions_take_a_subset_and_name_a_missing_class(
        tmp_path: pathlib.Path) -> None:
    path = tmp_path / 'toy.json'
    path.write_text(json.dumps({'circle': ['a round disc'],
                                'ring': ['a hollow disc']}))
    assert pc.toy_descriptions(['circle'], path) == [['a round disc']]
    with pytest.raises(MissingDescriptionError, match=r'toy\.json.*star'):
        pc.toy_descriptions(['circle', 'star'], path)


def test_prompt_prototypes_average_each_class_like_drm_mm() -> None:
    model, tokenizer = pc.build_toy_clip('drm-toy-rn')
    texts = [['a star.', 'a star shape.'], ['a ring.']]
    protos = pc.prompt_prototypes(model, tokenizer, texts)
    with torch.no_grad():
        star = F.normalize(model.encode_text(tokenizer(texts[0])), dim=-1)
        ring = F.normalize(model.encode_text(tokenizer(texts[1])), dim=-1)
    expected = F.normalize(torch.stack([star.mean(0), ring[0]]), dim=-1)
    torch.testing.assert_close(protos, expected)


def test_corpus_backgrounds_carry_no_shape_information() -> None:
    corpus = build_corpus(CorpusSettings(n_scenes=40, images_per_scene=16))
    assert corpus.images.shape == (640, 32, 32, 3)
    n_shapes = len(SHAPE_NAMES)
    counts = np.bincount(corpus.shape_ids, minlength=n_shapes)
    assert counts.max() - counts.min() <= 1  # balanced
    # Most scenes show several different shapes, and scene types repeat
    # across shapes: a background predicts the shape no better than chance
    # (majority vote per scene scored on its own frames is optimistic).
    majority = sum(np.bincount(corpus.shape_ids[corpus.scene_ids == s]).max()
                   for s in range(40)) / len(corpus)
    assert majority < 0.45


def test_captions_mention_shape_and_background() -> None:
    corpus = build_corpus(TINY_CORPUS)
    rng = np.random.default_rng(0)
    n_bg = 0
    for i in range(len(corpus)):
        name = SHAPE_NAMES[corpus.shape_ids[i]]
        for caption in corpus.captions([i] * 5, rng):
            assert name in caption or any(
                p in caption for p in CORE_PHRASES[name]), caption
            n_bg += corpus.scenes[corpus.scene_ids[i]].words in caption
    expected = 1 - TINY_CORPUS.no_background_frac
    assert abs(n_bg / (5 * len(corpus)) - expected) < 0.1


def test_few_scene_batches() -> None:
    corpus = build_corpus(TINY_CORPUS)
    rng = np.random.default_rng(0)
    idx = batch_indices(corpus, 16, rng, few_scenes=True)
    assert len(set(idx)) == 16 and len(set(corpus.scene_ids[idx])) == 2
    idx = batch_indices(corpus, 16, rng, few_scenes=False)
    assert len(set(idx)) == 16


def test_pretraining_is_cached_and_saves_a_plain_state_dict(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = pc.pretrain_toy_clip(TINY, cache_dir=tmp_path, world=TINY_WORLD,
                                 num_threads=1, log_interval=1)
    assert not first.cached
    assert first.path == tmp_path / TINY.weights_name()
    assert TINY.hash() in first.path.name and first.path.is_file()
    assert set(first.metrics) == {
        f'{p}/{s}' for p in ('df', 'cd')
        for s in pc.EVAL_SPLITS + ('background_id', 'background_opposite')}
    state = torch.load(first.path, map_location='cpu', weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = open_clip.create_model('drm-toy-rn')
    model.load_state_dict(state)  # strict: every key matches
    # the reported accuracies are those of the saved weights
    assert pc.zero_shot_report(model, open_clip.get_tokenizer('drm-toy-rn'),
                               TINY_WORLD) == first.metrics

    def no_training(*args, **kwargs):
        raise AssertionError('pretraining ran although the cache had it')

    monkeypatch.setattr(pc, 'train_toy_clip', no_training)
    second = pc.pretrain_toy_clip(TINY, cache_dir=tmp_path, world=TINY_WORLD,
                                  num_threads=1)
    assert second.cached and second.path == first.path
    assert second.metrics == first.metrics
    # Other settings miss the cache.
    other = pc.PretrainSettings(corpus=TINY_CORPUS, steps=4, batch_size=16,
                                warmup_steps=1)
    assert other.weights_name() != TINY.weights_name()
    with pytest.raises(AssertionError, match='pretraining ran'):
        pc.pretrain_toy_clip(other, cache_dir=tmp_path, world=None,
                             num_threads=1)


def test_settings_hash_round_trip() -> None:
    again = pc.PretrainSettings(**json.loads(json.dumps(TINY.to_dict())))
    assert again == TINY and again.hash() == TINY.hash()
    with pytest.raises(ValueError, match='batch_size'):
        pc.PretrainSettings(corpus=TINY_CORPUS, batch_size=1000)
    with pytest.raises(ValueError, match='drm-toy-nope'):
        pc.PretrainSettings(model_name='drm-toy-nope').hash()
