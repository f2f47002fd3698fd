"""Tests of the toy world: drawing, the WILDS layout, the spurious
correlation, the OOD locations and determinism."""
from __future__ import annotations

import csv
import json
import pathlib
from collections import Counter

import numpy as np
import pytest

from projects.toy_world.toy_world.shapes import (
    SHAPE_NAMES, ForegroundSettings, render_background,
    sample_background_style, shape_coverage)
from projects.toy_world.toy_world.toy_world import (
    SAMPLE_INFO_FILE, WorldSettings, ensure_world, generate_world,
    make_locations, read_world_info)

SMALL = dict(n_train=320, n_id_val=40, n_id_test=40, n_val=64, n_test=64,
             n_val_locations=4, n_test_locations=4)


def _rows(folder: pathlib.Path, name: str = 'metadata.csv') -> list:
    with open(folder / name, newline='') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def small_world(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    settings = WorldSettings(seed=3, **SMALL)
    return generate_world(tmp_path_factory.mktemp('toy'), settings,
                          progress=False)


def test_every_shape_draws_a_distinct_blob() -> None:
    n = len(SHAPE_NAMES)
    cover = shape_coverage(SHAPE_NAMES, np.full(n, 16.0), np.full(n, 16.0),
                           np.full(n, 12.0), np.zeros(n), 32)
    assert cover.shape == (n, 32, 32)
    assert cover.min() >= 0 and cover.max() <= 1
    areas = cover.sum(axis=(1, 2))
    assert (areas > 60).all(), dict(zip(SHAPE_NAMES, areas))
    # No two shapes have the same silhouette.
    flat = cover.reshape(n, -1)
    diff = np.abs(flat[:, None] - flat[None]).sum(-1)
    assert (diff[~np.eye(n, dtype=bool)] > 20).all()
    # The ring has a hole, the circle has none.
    ring, circle = SHAPE_NAMES.index('ring'), SHAPE_NAMES.index('circle')
    assert cover[ring, 16, 16] == 0 and cover[circle, 16, 16] == 1


def test_backgrounds_have_their_kind_and_size() -> None:
    rng = np.random.default_rng(0)
    for kind in ('plain', 'stripes', 'checker', 'dots', 'gradient', 'noise'):
        style = sample_background_style(rng, kind=kind, colour='blue')
        img = render_background(style, 32, margin=3)
        assert img.shape == (38, 38, 3) and img.dtype == np.float32
        assert 0 <= img.min() and img.max() <= 1
        assert style.words.endswith('blue background')
    with pytest.raises(ValueError, match='unknown kind'):
        sample_background_style(rng, kind='tartan')


def test_layout_opens_with_wilds(small_world: pathlib.Path) -> None:
    import wilds
    dataset = wilds.get_dataset('iwildcam', root_dir=str(small_world.parent),
                                download=False)
    assert dataset.n_classes == len(SHAPE_NAMES)
    for split, n in (('train', 320), ('id_val', 40), ('id_test', 40),
                     ('val', 64), ('test', 64)):
        assert len(dataset.get_subset(split)) == n
    x, y, metadata = dataset[0]
    assert x.size == (32, 32) and x.mode == 'RGB'
    names = [r['name'] for r in _rows(small_world, 'categories.csv')]
    assert names == list(SHAPE_NAMES)
    # WILDS' own metrics work on it (macro-F1 over the labels present).
    y_true = dataset.y_array[:50]
    results, _ = dataset.eval(y_true.clone(), y_true, dataset.metadata_array)
    assert results['F1-macro_all'] == pytest.approx(1.0)


@pytest.mark.parametrize('frac', [0.6, 0.9])
def test_own_location_fraction_as_requested(tmp_path: pathlib.Path,
                                            frac: float) -> None:
    settings = WorldSettings(seed=1, own_location_frac=frac,
                             **dict(SMALL, n_train=800))
    folder = generate_world(tmp_path, settings, progress=False)
    owner = {l['index']: l['cls'] for l in read_world_info(tmp_path)[
        'locations'] if l['kind'] == 'id'}
    train = [r for r in _rows(folder) if r['split'] == 'train']
    own = np.mean([owner[int(r['location_remapped'])] == int(r['y'])
                   for r in train])
    # 4 standard errors of a binomial fraction over 800 samples.
    assert abs(own - frac) < 4 * np.sqrt(frac * (1 - frac) / 800)
    # The relation file agrees with the metadata, row by row.
    relation = [r['relation'] for r in _rows(folder, SAMPLE_INFO_FILE)]
    assert [relation[i] == 'own' for i, r in enumerate(_rows(folder))
            if r['split'] == 'train'] == [
        owner[int(r['location_remapped'])] == int(r['y']) for r in train]


def test_ood_locations_are_unseen_and_say_nothing_or_the_opposite(
        small_world: pathlib.Path) -> None:
    info = read_world_info(small_world.parent)
    locs = {l['index']: l for l in info['locations']}
    rows = _rows(small_world)
    by_split = {s: {int(r['location_remapped']) for r in rows
                    if r['split'] == s} for s in ('train', 'val', 'test')}
    assert not by_split['train'] & (by_split['val'] | by_split['test'])
    assert not by_split['val'] & by_split['test']
    id_types = {(l['style']['kind'], l['style']['colour']): l['cls']
                for l in locs.values() if l['kind'] == 'id'}
    assert len(id_types) == sum(l['kind'] == 'id' for l in locs.values())
    kinds = Counter(l['kind'] for l in locs.values())
    assert kinds['opposite'] == 4 and kinds['neutral'] == 4
    for l in locs.values():
        scene = (l['style']['kind'], l['style']['colour'])
        if l['kind'] == 'neutral':  # a scene type no training location has
            assert scene not in id_types
        elif l['kind'] == 'opposite':  # looks like a location of class cls
            assert id_types[scene] == l['cls']
    for r in rows:
        loc = locs[int(r['location_remapped'])]
        if loc['kind'] == 'opposite':
            assert int(r['y']) != loc['cls']
    # Every class appears in every split.
    for split in ('train', 'id_val', 'id_test', 'val', 'test'):
        assert {int(r['y']) for r in rows if r['split'] == split} == set(
            range(len(SHAPE_NAMES)))


def test_hard_foreground_fraction(tmp_path: pathlib.Path) -> None:
    settings = WorldSettings(
        seed=2, foreground=ForegroundSettings(hard_frac=0.5), **SMALL)
    folder = generate_world(tmp_path, settings, progress=False)
    hard = Counter(r['hard'] for r in _rows(folder, SAMPLE_INFO_FILE))
    n = sum(hard.values())
    assert abs((hard['small'] + hard['faint']) / n - 0.5) < 0.1
    assert hard['small'] > 0 and hard['faint'] > 0


def test_same_seed_same_bytes_other_seed_other_world(
        tmp_path: pathlib.Path) -> None:
    tiny = dict(SMALL, n_train=40, n_val=16, n_test=16)
    a = generate_world(tmp_path / 'a', WorldSettings(seed=5, **tiny),
                       progress=False)
    b = generate_world(tmp_path / 'b', WorldSettings(seed=5, **tiny),
                       progress=False)
    c = generate_world(tmp_path / 'c', WorldSettings(seed=6, **tiny),
                       progress=False)
    assert (a / 'metadata.csv').read_bytes() == (b / 'metadata.csv').read_bytes()
    files = sorted(p.name for p in (a / 'train').iterdir())
    assert files == sorted(p.name for p in (b / 'train').iterdir())
    for name in files:
        assert (a / 'train' / name).read_bytes() == \
            (b / 'train' / name).read_bytes()
    assert any((a / 'train' / n).read_bytes() != (c / 'train' / n).read_bytes()
               for n in files)


def test_ensure_world_reuses_same_settings(tmp_path: pathlib.Path) -> None:
    tiny = WorldSettings(**dict(SMALL, n_train=16, n_val=8, n_test=8))
    _, made = ensure_world(tmp_path, tiny, progress=False)
    assert made
    _, made = ensure_world(tmp_path, tiny, progress=False)
    assert not made
    other = WorldSettings(seed=9, **dict(SMALL, n_train=16, n_val=8, n_test=8))
    _, made = ensure_world(tmp_path, other, progress=False)
    assert made
    assert read_world_info(tmp_path)['hash'] == other.hash()


def test_settings_round_trip_and_hash() -> None:
    s = WorldSettings(seed=4, classes=('circle', 'star', 'ring'))
    again = WorldSettings(**json.loads(json.dumps(s.to_dict())))
    assert again == s and again.hash() == s.hash()
    assert WorldSettings(seed=5).hash() != WorldSettings(seed=4).hash()


def test_bad_settings_name_the_problem() -> None:
    with pytest.raises(ValueError, match='unknown shape.*hexagon'):
        WorldSettings(classes=('circle', 'hexagon'))
    with pytest.raises(ValueError, match='own_location_frac'):
        WorldSettings(own_location_frac=1.5)
    with pytest.raises(ValueError, match='n_val'):
        WorldSettings(n_val=3)
    with pytest.raises(ValueError, match='distinct scene'):
        WorldSettings(locations_per_class=9)
    with pytest.raises(ValueError, match='n_val_locations'):
        make_locations(WorldSettings(n_val_locations=1,
                                     opposite_location_frac=1.0))
