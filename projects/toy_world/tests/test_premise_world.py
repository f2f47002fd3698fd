"""Tests of the premise world: the caption corpus ties rare class names to
their class's habitat, core phrases stay frequent and scene-independent,
and the control corpus is unchanged. Statistics are measured on rendered
captions, not read back from the settings."""
from __future__ import annotations

import dataclasses
import re
from collections import Counter

import numpy as np
import pytest

from projects.toy_world.toy_world.caption_corpus import (
    CORE_PHRASES, PREMISE_KNOBS, CorpusSettings, build_corpus,
    confusion_partner, premise_corpus)
from projects.toy_world.toy_world.demo import DemoSettings, study_pretrain_settings
from projects.toy_world.toy_world.toy_world import (WorldSettings, background_images,
                                  class_habitats, make_locations)

WORLD = WorldSettings()


def _names_in(caption: str, shapes) -> list:
    """Class names a caption uses as words ('cross' but not 'crossing')."""
    return [s for s in shapes if re.search(rf'\b{s}\b', caption)]


def _phrase_in(caption: str, name: str) -> bool:
    return any(p in caption for p in CORE_PHRASES[name])


@pytest.fixture(scope='module')
def premise() -> dict:
    settings = premise_corpus(class_habitats(WORLD), n_scenes=240)
    corpus = build_corpus(settings)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(len(corpus)):
        name = settings.shapes[int(corpus.shape_ids[i])]
        scene = corpus.scenes[int(corpus.scene_ids[i])]
        for _ in range(2):
            cap = corpus.caption(i, rng)
            rows.append(dict(name=name, cap=cap,
                             home=(scene.kind, scene.colour) in
                             set(settings.habitats[settings.shapes.index(
                                 name)]),
                             scene=(scene.kind, scene.colour)))
    # names are rare (under 1 caption in 1,000): many captions per frame
    named = []  # (frame's own class named, other class named, at home)
    for i in range(len(corpus)):
        name = settings.shapes[int(corpus.shape_ids[i])]
        others = [s for s in settings.shapes if s != name]
        for cap in corpus.captions([i] * 40, rng):
            named.append((bool(re.search(rf'\b{name}\b', cap)),
                          bool(_names_in(cap, others)),
                          bool(corpus.home[i])))
    return dict(settings=settings, corpus=corpus, rows=rows,
                named=np.array(named, dtype=bool))


def test_habitats_are_the_scene_types_of_each_class_locations() -> None:
    habitats = class_habitats(WORLD)
    assert len(habitats) == len(WORLD.classes)
    for k, types in enumerate(habitats):
        own = [(l.style.kind, l.style.colour) for l in make_locations(WORLD)
               if l.kind == 'id' and l.cls == k]
        assert list(types) == own and len(types) == WORLD.locations_per_class


def test_class_names_are_rare_and_only_at_home(premise: dict) -> None:
    own, other, home = premise['named'].T
    # Every name used is the frame's own class.
    assert not other.any()
    share = own.mean()
    assert 0.0003 < share < 0.002, share      # rare: ~1 caption in 1,000
    assert own.sum() > 100                    # enough to measure
    assert own[home].sum() == own.sum()       # only in the habitat
    at_home = own[home].mean()                # ~0.5 % of home captions
    assert 0.002 < at_home < 0.01, at_home


def test_core_phrases_are_frequent_and_scene_independent(premise) -> None:
    rows = premise['rows']
    with_phrase = [_phrase_in(r['cap'], r['name']) for r in rows]
    assert np.mean(with_phrase) > 0.85
    # Same frequency at home and away (within sampling noise).
    home = [p for p, r in zip(with_phrase, rows) if r['home']]
    away = [p for p, r in zip(with_phrase, rows) if not r['home']]
    assert abs(np.mean(away) - PREMISE_KNOBS['desc_frac'] -
               (1 - PREMISE_KNOBS['desc_frac'] -
                PREMISE_KNOBS['name_frac'])) < 0.02
    assert np.mean(home) > 0.6
    # Phrases of a class are spread over many scene types, not its habitat.
    scenes = Counter(r['scene'] for p, r in zip(with_phrase, rows)
                     if p and r['name'] == 'star')
    assert len(scenes) > 20


def test_habitat_scenes_show_their_class(premise: dict) -> None:
    corpus, settings = premise['corpus'], premise['settings']
    home = corpus.home.mean()
    assert settings.habitat_scene_frac * settings.habitat_shape_frac * 0.8 \
        < home < 0.3


def test_control_corpus_is_unchanged() -> None:
    control = CorpusSettings(n_scenes=3, images_per_scene=4)
    assert 'habitats' not in control.to_dict()  # same hash as before
    corpus = build_corpus(control)
    assert not corpus.home.any()
    # Captions follow name_frac / desc_frac as before habitats existed.
    rng = np.random.default_rng(0)
    caps = [corpus.caption(i % len(corpus), rng) for i in range(600)]
    named = np.mean([bool(_names_in(c, control.shapes)) for c in caps])
    assert abs(named - (1 - control.desc_frac)) < 0.07


def test_bad_habitats_are_named() -> None:
    with pytest.raises(ValueError, match='habitats: give a non-empty tuple'):
        CorpusSettings(habitats=((('plain', 'red'), ), ))
    bad = [[('plain', 'red')]] * 7 + [[('wavy', 'red')]]
    with pytest.raises(ValueError, match=r"unknown scene type \('wavy'"):
        CorpusSettings(habitats=bad)
    good = class_habitats(WORLD)
    with pytest.raises(ValueError, match='home_name_frac must be in'):
        premise_corpus(good, home_name_frac=1.5)


def test_background_probe_images_are_the_class_scenes() -> None:
    data = background_images(WORLD, per_location=2)
    images, cls = data['id']
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
    assert len(images) == 2 * len(WORLD.classes) * WORLD.locations_per_class
    assert sorted(Counter(cls.tolist()).values()) == \
        [2 * WORLD.locations_per_class] * len(WORLD.classes)
    opp_images, opp_cls = data['opposite']
    n_opp = sum(l.kind == 'opposite' for l in make_locations(WORLD))
    assert len(opp_images) == 2 * n_opp and (opp_cls >= 0).all()


def test_the_study_defaults_to_the_premise_world() -> None:
    settings = DemoSettings()
    assert settings.world_kind == 'premise'
    assert settings.pretrain == study_pretrain_settings('premise', WORLD)
    assert settings.pretrain.corpus.habitats == class_habitats(WORLD)
    control = DemoSettings(world_kind='control')
    assert control.pretrain.corpus == CorpusSettings()
    with pytest.raises(ValueError, match="world_kind must be one of"):
        DemoSettings(world_kind='web')


def test_desc_confusion_off_keeps_the_cached_clip_key() -> None:
    # The knob came after CLIPs were cached: at its default it is not in
    # the hash, so the study's premise CLIP keeps its key.
    settings = DemoSettings().pretrain.corpus
    assert 'desc_confusion' not in settings.to_dict()
    assert settings.hash() == 'cc5cc3b744c7'
    assert 'desc_confusion' in dataclasses.replace(
        settings, desc_confusion=0.3).to_dict()


def test_desc_confusion_off_draws_no_extra_random_numbers() -> None:
    # Without confusion the caption sampler makes the same draws as before
    # the knob existed (so the study's captions, and its CLIP, are the
    # same); with it on, one more uniform draw comes first, before the
    # phrase is drawn.
    class Recorder:
        def __init__(self, seed):
            self.rng, self.calls = np.random.default_rng(seed), []

        def uniform(self, *args):
            self.calls.append('uniform')
            return self.rng.uniform(*args)

        def integers(self, *args):
            self.calls.append('integers')
            return self.rng.integers(*args)

    habitats = class_habitats(WORLD)
    for confusion, first in ((0.0, ['integers', 'uniform']),
                             (0.5, ['uniform', 'integers', 'uniform'])):
        corpus = build_corpus(premise_corpus(
            habitats, n_scenes=2, images_per_scene=4,
            desc_confusion=confusion))
        for i in range(len(corpus)):
            rec = Recorder(i)
            corpus.caption(i, rec)
            # phrase (and confusion), mode, background, template[, size]
            assert rec.calls[:len(first)] == first
            assert rec.calls[len(first):len(first) + 2] == \
                ['uniform', 'integers']
            rest = rec.calls[len(first) + 2:]
            assert rest == (['uniform'] if corpus.hard[i] else [])


def test_confused_captions_describe_the_partner_shape() -> None:
    shapes = WORLD.classes
    assert [confusion_partner(i, 8) for i in range(8)] == \
        [1, 0, 3, 2, 5, 4, 7, 6]
    assert confusion_partner(6, 7) == 0  # odd count: the last pairs with 0
    p = 0.3
    settings = premise_corpus(class_habitats(WORLD), n_scenes=60,
                              desc_confusion=p)
    corpus = build_corpus(settings)
    rng = np.random.default_rng(1)
    own = partner = 0
    for i in range(len(corpus)):
        k = int(corpus.shape_ids[i])
        for cap in corpus.captions([i] * 5, rng):
            mine = _phrase_in(cap, shapes[k])
            theirs = _phrase_in(cap, shapes[confusion_partner(k, 8)])
            assert not (mine and theirs)
            own += mine
            partner += theirs
            # no third shape is ever described
            assert not any(_phrase_in(cap, s) for j, s in enumerate(shapes)
                           if j not in (k, confusion_partner(k, 8)))
    n = own + partner
    # binomial: within 5 standard deviations of p
    assert abs(partner / n - p) < 5 * (p * (1 - p) / n) ** 0.5
    with pytest.raises(ValueError, match='desc_confusion'):
        CorpusSettings(desc_confusion=1.5)
