"""Tiny iWildCam / FMoW folders written by tools/dataset_tools/wilds_layout.py
open in wilds unchanged."""
from __future__ import annotations

import datetime as dt
import filecmp
import pathlib

import numpy as np
import pandas as pd
import pytest
import wilds
from PIL import Image

from tools.dataset_tools.wilds_layout import (
    FMOW_OTHER_REGION, FMOW_REGIONS, FMOW_SPLIT_RULES, FMOW_SPLITS,
    IWILDCAM_METADATA_COLUMNS, IWILDCAM_SPLITS, fmow_sample_for_split,
    random_image, tiny_fmow_samples, tiny_iwildcam_samples, write_fmow,
    write_iwildcam)


def _iwildcam(root) -> wilds.datasets.wilds_dataset.WILDSDataset:
    return wilds.get_dataset('iwildcam', root_dir=str(root), download=False)


def _fmow(root) -> wilds.datasets.wilds_dataset.WILDSDataset:
    return wilds.get_dataset('fmow', root_dir=str(root), download=False)


def _sample(split='train', y=0, location=0, **extra):
    return dict(image=np.zeros((8, 8, 3), np.uint8), split=split, y=y,
                location=location, **extra)


# ----------------------------------------------------------------- iWildCam


def test_fake_iwildcam_opens_with_every_split(fake_iwildcam_root) -> None:
    dataset = _iwildcam(fake_iwildcam_root)
    assert dataset.n_classes == 6
    for split in IWILDCAM_SPLITS:
        subset = dataset.get_subset(split)
        assert len(subset) > 0, split
    x, y, metadata = dataset.get_subset('test')[0]
    assert x.size == (64, 48) and x.mode == 'RGB'
    assert set(dataset.get_subset('train').y_array.tolist()) == set(range(6))


def test_fake_iwildcam_files(fake_iwildcam_root) -> None:
    folder = pathlib.Path(fake_iwildcam_root) / 'iwildcam_v2.0'
    assert (folder / 'RELEASE_v2.0.txt').is_file()
    metadata = pd.read_csv(folder / 'metadata.csv')
    assert tuple(metadata.columns) == IWILDCAM_METADATA_COLUMNS
    for name in metadata['filename']:
        assert (folder / 'train' / name).is_file()
        assert len(name) == len('8b31d3be-21bc-11ea-a13a-137349068a90.jpg')
    categories = pd.read_csv(folder / 'categories.csv')
    assert list(categories.columns) == ['y', 'category_id', 'name']
    assert categories['y'].tolist() == list(range(6))
    # Sequences: frame numbers and counts agree.
    counts = metadata.groupby('sequence_remapped').size()
    assert (metadata['seq_num_frames'] ==
            metadata['sequence_remapped'].map(counts)).all()
    assert metadata.groupby('seq_id')['sequence_remapped'].nunique().max() == 1


def test_iwildcam_round_trip(tmp_path) -> None:
    # Solid colours survive JPEG, so each image is recognisable after reading.
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0),
               (0, 250, 250), (250, 0, 250)]
    arrays = [np.full((12, 16, 3), c, np.uint8) for c in colours]
    rows = [('train', 0, 0), ('train', 1, 1), ('train', 2, 0),
            ('id_val', 1, 1), ('val', 2, 2), ('test', 0, 3)]
    samples = [dict(image=a, split=s, y=y, location=loc,
                    datetime=dt.datetime(2012, 3, 4, 5, 6, 7, 8000))
               for a, (s, y, loc) in zip(arrays, rows)]
    folder = write_iwildcam(tmp_path, iter(samples),
                            categories=[(0, 0, 'empty'), (1, 3, 'fox'),
                                        (2, 7, 'deer')], jpeg_quality=95)
    assert folder == tmp_path / 'iwildcam_v2.0'
    dataset = _iwildcam(tmp_path)
    assert dataset.y_array.tolist() == [y for _, y, _ in rows]
    fields = dataset.metadata_fields
    location = dataset.metadata_array[:, fields.index('location')].tolist()
    assert location == [loc for _, _, loc in rows]
    sequence = dataset.metadata_array[:, fields.index('sequence')].tolist()
    assert sorted(sequence) == list(range(6))  # one sequence per image
    year = dataset.metadata_array[:, fields.index('year')].tolist()
    assert year == [2012] * 6
    names = [s for s, _, _ in rows]
    split_of = {v: k for k, v in dataset.split_dict.items()}
    assert [split_of[i] for i in dataset.split_array.tolist()] == names
    image = np.asarray(dataset.get_input(4), dtype=np.int16)
    assert image.shape == (12, 16, 3)
    assert np.abs(image - arrays[4]).max() < 16  # JPEG is lossy
    categories = pd.read_csv(folder / 'categories.csv')
    assert categories['name'].tolist() == ['empty', 'fox', 'deer']
    assert categories['category_id'].tolist() == [0, 3, 7]


def test_iwildcam_is_deterministic(tmp_path) -> None:
    a = write_iwildcam(tmp_path / 'a', tiny_iwildcam_samples(seed=3))
    b = write_iwildcam(tmp_path / 'b', tiny_iwildcam_samples(seed=3))
    c = write_iwildcam(tmp_path / 'c', tiny_iwildcam_samples(seed=4))
    names = sorted(p.name for p in (a / 'train').iterdir())
    assert names == sorted(p.name for p in (b / 'train').iterdir())
    match, mismatch, errors = filecmp.cmpfiles(a / 'train', b / 'train',
                                               names, shallow=False)
    assert not mismatch and not errors
    assert (a / 'metadata.csv').read_bytes() == (b / 'metadata.csv').read_bytes()
    assert (a / 'metadata.csv').read_bytes() != (c / 'metadata.csv').read_bytes()


def test_iwildcam_explicit_and_implicit_sequences(tmp_path) -> None:
    samples = [_sample(sequence=0), _sample(sequence=0), _sample(),
               _sample(sequence=1)]
    folder = write_iwildcam(tmp_path, samples)
    metadata = pd.read_csv(folder / 'metadata.csv')
    assert metadata['sequence_remapped'].tolist() == [0, 0, 2, 1]
    assert metadata['frame_num'].tolist() == [1, 2, 1, 1]
    assert metadata['seq_num_frames'].tolist() == [2, 2, 1, 1]
    _iwildcam(tmp_path)


@pytest.mark.parametrize('samples, message', [
    ([_sample(y=0), _sample(y=2)], r'labels "y" must cover 0\.\.2.*\[1\]'),
    ([_sample(location=1)], r'"location" ids must cover 0\.\.1.*\[0\]'),
    ([_sample(sequence=0), _sample(sequence=5)],
     r'"sequence" ids must cover 0\.\.5'),
    ([_sample(split='validation')], r"sample 0: unknown split 'validation'"),
    ([dict(image=np.zeros((4, 4, 3), np.uint8), split='train', y=0)],
     r'sample 0: missing key "location"'),
    ([_sample(datetime='2013/01/01')], r'does not match'),
    ([dict(_sample(), image=np.zeros((4, 4), np.uint8))], r'HxWx3 uint8'),
    ([], r'no samples'),
    ([_sample(sequnce=0)], r"unknown key\(s\) \['sequnce'\]"),
])
def test_iwildcam_rejects_what_wilds_would_assert(tmp_path, samples,
                                                  message) -> None:
    with pytest.raises(ValueError, match=message):
        write_iwildcam(tmp_path, samples)
    # Nothing half-written is left behind for wilds to trip on.
    assert not (tmp_path / 'iwildcam_v2.0').exists()
    assert list(tmp_path.iterdir()) == []


def test_iwildcam_rejects_bad_categories(tmp_path) -> None:
    with pytest.raises(ValueError, match=r'categories must list each label'):
        write_iwildcam(tmp_path, [_sample(y=0), _sample(y=1)],
                       categories=[(0, 0, 'empty')])


def test_iwildcam_refuses_to_overwrite(tmp_path) -> None:
    write_iwildcam(tmp_path, [_sample()])
    with pytest.raises(FileExistsError, match='overwrite=True'):
        write_iwildcam(tmp_path, [_sample()])
    write_iwildcam(tmp_path, [_sample(), _sample(y=1)], overwrite=True)
    assert len(pd.read_csv(tmp_path / 'iwildcam_v2.0' / 'metadata.csv')) == 2


def test_iwildcam_streams_a_generator(tmp_path) -> None:
    seen = []

    def samples():
        for i in range(3):
            # Earlier images are on disk before the next one is produced.
            seen.append(len(list((tmp_path / '.iwildcam_v2.0.partial' /
                                  'train').iterdir())))
            yield _sample()

    write_iwildcam(tmp_path, samples())
    assert seen == [0, 1, 2]


# --------------------------------------------------------------------- FMoW


def test_fake_fmow_opens_with_every_split_and_region(fake_fmow_root) -> None:
    dataset = _fmow(fake_fmow_root)
    regions = dataset.metadata_map['region']
    assert set(regions) == set(FMOW_REGIONS) | {FMOW_OTHER_REGION}
    region_col = dataset.metadata_fields.index('region')
    for split in FMOW_SPLITS:
        subset = dataset.get_subset(split)
        assert len(subset) > 0, split
        present = {regions[r] for r in subset.metadata_array[:, region_col]}
        assert present == set(regions), split
    x, _, _ = dataset.get_subset('test')[0]
    assert x.size == (32, 32) and x.mode == 'RGB'


def test_fmow_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    plan = [('train', 3, 'USA'), ('seq', 5, 'FRA'), ('id_val', 7, 'CHN'),
            ('id_test', 61, 'NGA'), ('val', 0, 'AUS'), ('test', 1, 'ZZZ'),
            ('test', 2, 'FRA')]
    arrays = [np.asarray(random_image(rng, (24, 20))) for _ in plan]
    samples = [dict(image=a, y=y, country_code=c,
                    **fmow_sample_for_split(s, rng))
               for a, (s, y, c) in zip(arrays, plan)]
    samples[0]['timestamp'] = '2002-05-06T07:08:09Z'
    folder = write_fmow(tmp_path, samples)
    assert folder == tmp_path / 'fmow_v1.1'
    assert sorted(p.name for p in (folder / 'images').iterdir()) == sorted(
        f'rgb_img_{i}.png' for i in range(len(plan)))
    dataset = _fmow(tmp_path)
    kept = [p for p in plan if p[0] != 'seq']
    kept_arrays = [a for a, p in zip(arrays, plan) if p[0] != 'seq']
    split_of = {v: k for k, v in dataset.split_dict.items()}
    assert [split_of[i] for i in dataset.split_array.tolist()] == [
        s for s, _, _ in kept]
    assert dataset.y_array.tolist() == [y for _, y, _ in kept]
    regions = dataset.metadata_map['region']
    got = [regions[r] for r in dataset.metadata_array[:, 0].tolist()]
    assert got == ['Americas', 'Asia', 'Africa', 'Oceania', 'Other', 'Europe']
    years = dataset.metadata_array[:, 1] + 2002
    assert years[0] == 2002
    for i, array in enumerate(kept_arrays):  # PNG is lossless, seq skipped
        np.testing.assert_array_equal(np.asarray(dataset.get_input(i)), array)


def test_fmow_metadata_files(fake_fmow_root) -> None:
    folder = pathlib.Path(fake_fmow_root) / 'fmow_v1.1'
    assert (folder / 'RELEASE_v1.1.txt').is_file()
    metadata = pd.read_csv(folder / 'rgb_metadata.csv')
    for column in ('split', 'img_filename', 'img_path', 'spatial_reference',
                   'epsg', 'category', 'visible', 'img_width', 'img_height',
                   'country_code', 'cloud_cover', 'timestamp', 'lat', 'lon'):
        assert column in metadata.columns
    assert set(metadata['split']) == {'train', 'val', 'test', 'seq'}
    mapping = pd.read_csv(folder / 'country_code_mapping.csv')
    for column in ('name', 'alpha-2', 'alpha-3', 'region'):
        assert column in mapping.columns
    assert set(mapping['region']) == set(FMOW_REGIONS)
    with Image.open(folder / 'images' / 'rgb_img_0.png') as image:
        assert image.format == 'PNG'


def test_fmow_sample_for_split_lands_in_its_years() -> None:
    rng = np.random.default_rng(0)
    for split, (_, first, last) in FMOW_SPLIT_RULES.items():
        for _ in range(20):
            sample = fmow_sample_for_split(split, rng)
            assert sample['split'] == split
            assert first <= sample['timestamp'].year <= last
    with pytest.raises(ValueError, match='unknown split'):
        fmow_sample_for_split('ood', rng)


def test_fmow_is_deterministic(tmp_path) -> None:
    a = write_fmow(tmp_path / 'a', tiny_fmow_samples(seed=5))
    b = write_fmow(tmp_path / 'b', tiny_fmow_samples(seed=5))
    names = sorted(p.name for p in (a / 'images').iterdir())
    _, mismatch, errors = filecmp.cmpfiles(a / 'images', b / 'images', names,
                                           shallow=False)
    assert not mismatch and not errors
    assert (a / 'rgb_metadata.csv').read_bytes() == (
        b / 'rgb_metadata.csv').read_bytes()


@pytest.mark.parametrize('sample, message', [
    (dict(split='val', timestamp=dt.datetime(2010, 1, 1)),
     r"year 2010\) cannot be in WILDS split 'val'"),
    (dict(split='test', timestamp='2019-01-01T00:00:00Z'),
     r'years 2016-2017'),
    (dict(split='ood_test'), r"unknown split 'ood_test'"),
    (dict(split='train', y=62), r'not an FMoW class index'),
    (dict(split='train', country_code=''), r'alpha-3'),
    (dict(split='train', timestamp='yesterday'), r'not an ISO date'),
    (dict(split='train', region='Asia'), r"unknown key\(s\) \['region'\]"),
])
def test_fmow_rejects_bad_samples(tmp_path, sample, message) -> None:
    full = dict(image=np.zeros((4, 4, 3), np.uint8), y=0, country_code='USA')
    full.update(sample)
    with pytest.raises(ValueError, match=message):
        write_fmow(tmp_path, [full])
    assert list(tmp_path.iterdir()) == []


def test_fmow_jpeg_quality_is_lossy_png(tmp_path) -> None:
    rng = np.random.default_rng(0)
    array = np.asarray(random_image(rng, (16, 16)))
    folder = write_fmow(tmp_path, [dict(image=array, y=0, country_code='USA',
                                        split='train')], jpeg_quality=50)
    with Image.open(folder / 'images' / 'rgb_img_0.png') as image:
        assert image.format == 'PNG'
        assert not np.array_equal(np.asarray(image.convert('RGB')), array)
