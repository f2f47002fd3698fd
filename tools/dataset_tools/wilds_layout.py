"""Writers of WILDS iWildCam v2.0 and FMoW v1.1 folders in their real on-disk layouts.

Test fixtures and the toy-world generator use them to make tiny datasets
that ``wilds.get_dataset(..., download=False)`` opens exactly as it opens
the published ones, so every loader in drm_mm is exercised on the real
formats without any download. Import it as ``tools.dataset_tools.wilds_layout``
from the checkout root (tests, projects) or as ``wilds_layout`` from a script
in this folder.

Layouts written (checked against ``wilds`` 2.0.0 ``IWildCamDataset`` and
``FMoWDataset.__init__``)::

    <root>/iwildcam_v2.0/RELEASE_v2.0.txt
                         metadata.csv      split, location_remapped, location,
                                           sequence_remapped, datetime, y,
                                           filename, image_id, seq_id,
                                           seq_num_frames, frame_num
                         categories.csv    y, category_id, name
                         train/<uuid>.jpg  every image, whatever its split
    <root>/fmow_v1.1/RELEASE_v1.1.txt
                     rgb_metadata.csv      split, img_filename, img_path,
                                           spatial_reference, epsg, category,
                                           visible, img_width, img_height,
                                           country_code, cloud_cover,
                                           timestamp, lat, lon, region
                     country_code_mapping.csv   ISO-3166 table (name, alpha-2,
                                           alpha-3, country-code, iso_3166-2,
                                           region, sub-region, ...)
                     images/rgb_img_<row>.png   <row> = row of rgb_metadata.csv

FMoW splits (scheme ``official`` == ``time_after_2016``): wilds derives the
WILDS split from the metadata ``split`` column (train/val/test/seq) *and*
the year of ``timestamp``:

    WILDS split  metadata split  years
    train        train           2002-2012
    id_val       val             2002-2012
    id_test      test            2002-2012
    val (OOD)    val             2013-2015
    test (OOD)   test            2016-2017
    (dropped)    seq             any

The FMoW writer therefore takes the WILDS split name per sample and writes
the matching metadata split; :func:`fmow_sample_for_split` draws a timestamp
that lands in a given split.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import pathlib
import shutil
import uuid
from typing import (Any, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, Union)

import numpy as np
from PIL import Image

PathLike = Union[str, os.PathLike]
ImageLike = Union[Image.Image, np.ndarray]

IWILDCAM_FOLDER = 'iwildcam_v2.0'
IWILDCAM_SPLITS = ('train', 'val', 'test', 'id_val', 'id_test')
IWILDCAM_METADATA_COLUMNS = (
    'split', 'location_remapped', 'location', 'sequence_remapped', 'datetime',
    'y', 'filename', 'image_id', 'seq_id', 'seq_num_frames', 'frame_num')
IWILDCAM_CATEGORY_COLUMNS = ('y', 'category_id', 'name')
IWILDCAM_DATETIME_FORMAT = '%Y-%m-%d %H:%M:%S.%f'
_IWILDCAM_SAMPLE_KEYS = ('image', 'split', 'y', 'location', 'datetime',
                         'sequence')

FMOW_FOLDER = 'fmow_v1.1'
FMOW_SPLITS = ('train', 'id_val', 'id_test', 'val', 'test')
FMOW_METADATA_COLUMNS = (
    'split', 'img_filename', 'img_path', 'spatial_reference', 'epsg',
    'category', 'visible', 'img_width', 'img_height', 'country_code',
    'cloud_cover', 'timestamp', 'lat', 'lon', 'region')
FMOW_COUNTRY_COLUMNS = (
    'name', 'alpha-2', 'alpha-3', 'country-code', 'iso_3166-2', 'region',
    'sub-region', 'intermediate-region', 'region-code', 'sub-region-code',
    'intermediate-region-code')
FMOW_REGIONS = ('Asia', 'Europe', 'Africa', 'Americas', 'Oceania')
FMOW_OTHER_REGION = 'Other'
# WILDS split -> (metadata split column value, first year, last year).
FMOW_SPLIT_RULES: Dict[str, Tuple[str, int, int]] = {
    'train': ('train', 2002, 2012),
    'id_val': ('val', 2002, 2012),
    'id_test': ('test', 2002, 2012),
    'val': ('val', 2013, 2015),
    'test': ('test', 2016, 2017),
    'seq': ('seq', 2002, 2017),
}
_FMOW_SAMPLE_KEYS = ('image', 'split', 'y', 'country_code', 'timestamp',
                     'lat', 'lon', 'cloud_cover')
_FMOW_TIMESTAMP_FORMAT = '%Y-%m-%dT%H:%M:%SZ'
_WGS84_WKT = ('GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
              '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",'
              '0.0174532925199433]]')

# A few real ISO-3166 rows per region: (name, alpha-2, alpha-3, numeric,
# region, sub-region, region-code, sub-region-code, lat, lon).
_COUNTRIES: Tuple[Tuple[Any, ...], ...] = (
    ('China', 'CN', 'CHN', 156, 'Asia', 'Eastern Asia', 142, 30, 35.0, 103.0),
    ('India', 'IN', 'IND', 356, 'Asia', 'Southern Asia', 142, 34, 21.0, 78.0),
    ('Japan', 'JP', 'JPN', 392, 'Asia', 'Eastern Asia', 142, 30, 36.0, 138.0),
    ('France', 'FR', 'FRA', 250, 'Europe', 'Western Europe', 150, 155, 46.0,
     2.0),
    ('Germany', 'DE', 'DEU', 276, 'Europe', 'Western Europe', 150, 155, 51.0,
     10.0),
    ('Nigeria', 'NG', 'NGA', 566, 'Africa', 'Sub-Saharan Africa', 2, 202, 9.0,
     8.0),
    ('Egypt', 'EG', 'EGY', 818, 'Africa', 'Northern Africa', 2, 15, 26.0,
     30.0),
    ('United States of America', 'US', 'USA', 840, 'Americas',
     'Northern America', 19, 21, 39.0, -98.0),
    ('Brazil', 'BR', 'BRA', 76, 'Americas', 'Latin America and the Caribbean',
     19, 419, -10.0, -52.0),
    ('Australia', 'AU', 'AUS', 36, 'Oceania', 'Australia and New Zealand', 9,
     53, -25.0, 134.0),
    ('New Zealand', 'NZ', 'NZL', 554, 'Oceania', 'Australia and New Zealand',
     9, 53, -41.0, 174.0),
)
FMOW_COUNTRY_REGIONS: Dict[str, str] = {c[2]: c[4] for c in _COUNTRIES}
_COUNTRY_LATLON: Dict[str, Tuple[float, float]] = {
    c[2]: (c[8], c[9]) for c in _COUNTRIES}
# 'XKX' (Kosovo) is a user-assigned code absent from ISO-3166, so wilds maps
# it to region 'Other' like the unmapped codes of the real metadata.
FMOW_OTHER_COUNTRY = 'XKX'


def random_image(rng: Union[np.random.Generator, int],
                 size: Tuple[int, int] = (32, 32)) -> Image.Image:
    """Return an RGB image of uniform random pixels, ``size`` = (W, H)."""
    rng = np.random.default_rng(rng)
    width, height = size
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode='RGB')


# --------------------------------------------------------------------------
# shared helpers


def _as_rgb(image: Any, where: str) -> Image.Image:
    """Turn a PIL image or an HxWx3 uint8 array into an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image if image.mode == 'RGB' else image.convert('RGB')
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f'{where}: "image" must be an HxWx3 uint8 array, got shape '
                f'{image.shape} dtype {image.dtype}; convert it with '
                f'np.asarray(img, dtype=np.uint8) and drop any alpha channel.')
        return Image.fromarray(image, mode='RGB')
    raise TypeError(f'{where}: "image" must be a PIL.Image or an HxWx3 uint8 '
                    f'numpy array, got {type(image).__name__}.')


def _require(sample: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(sample, Mapping):
        raise TypeError(f'{where}: each sample must be a dict, got '
                        f'{type(sample).__name__}.')
    if key not in sample:
        raise ValueError(f'{where}: missing key "{key}" (keys present: '
                         f'{sorted(sample)}).')
    return sample[key]


def _check_keys(sample: Mapping[str, Any], allowed: Sequence[str],
                where: str) -> None:
    """Refuse keys the writer does not know (a typo would be dropped)."""
    unknown = sorted(set(sample) - set(allowed))
    if unknown:
        raise ValueError(f'{where}: unknown key(s) {unknown}; the writer '
                         f'takes {sorted(allowed)}. Remove extra keys first.')


def _as_int(value: Any, key: str, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f'{where}: "{key}" must be an int, got {value!r}.')
    if int(value) < minimum:
        raise ValueError(f'{where}: "{key}" must be >= {minimum}, got '
                         f'{value}.')
    return int(value)


def _check_contiguous(values: Iterable[int], name: str, what: str,
                      fix: str) -> None:
    """Raise unless ``values`` are exactly 0..max (what wilds asserts)."""
    present = set(values)
    if not present:
        return
    missing = sorted(set(range(max(present) + 1)) - present)
    if missing:
        shown = missing[:20] + (['...'] if len(missing) > 20 else [])
        raise ValueError(
            f'{name}: {what} must cover 0..{max(present)} without gaps '
            f'(wilds asserts it), but {len(missing)} value(s) are missing: '
            f'{shown}. {fix}')


def _start_folder(root: PathLike, folder: str,
                  overwrite: bool) -> Tuple[pathlib.Path, pathlib.Path]:
    """Return (final, partial) folders; data is written to ``partial``."""
    root = pathlib.Path(root)
    final = root / folder
    if final.exists() and not overwrite:
        raise FileExistsError(
            f'{final} already exists; pick an empty root or pass '
            f'overwrite=True to replace it.')
    partial = root / f'.{folder}.partial'
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return final, partial


def _finish_folder(final: pathlib.Path, partial: pathlib.Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)


def _write_csv(path: pathlib.Path, columns: Sequence[str],
               rows: Iterable[Mapping[str, Any]]) -> None:
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


def _hex_id(*parts: Any) -> str:
    """Deterministic UUID-formatted hex id, like the real iWildCam names."""
    digest = hashlib.md5('/'.join(map(str, parts)).encode()).digest()
    return str(uuid.UUID(bytes=digest))


# --------------------------------------------------------------------------
# iWildCam


def _iwildcam_datetime(value: Any, index: int, where: str) -> str:
    if value is None:
        # Deterministic fake time: one hour apart, starting mid-2013.
        value = dt.datetime(2013, 6, 1) + dt.timedelta(hours=index)
    if isinstance(value, str):
        try:
            value = dt.datetime.strptime(value, IWILDCAM_DATETIME_FORMAT)
        except ValueError:
            raise ValueError(
                f'{where}: "datetime" {value!r} does not match '
                f'{IWILDCAM_DATETIME_FORMAT!r} (e.g. '
                f'"2013-06-05 05:44:19.000"), the format wilds parses.'
            ) from None
    if not isinstance(value, dt.datetime):
        raise TypeError(f'{where}: "datetime" must be a datetime or a string, '
                        f'got {type(value).__name__}.')
    millis = value.microsecond // 1000
    return value.strftime('%Y-%m-%d %H:%M:%S.') + f'{millis:03d}'


def write_iwildcam(root: PathLike,
                   samples: Iterable[Mapping[str, Any]],
                   categories: Optional[Sequence[Tuple[int, int, str]]] = None,
                   jpeg_quality: int = 90,
                   *,
                   overwrite: bool = False) -> pathlib.Path:
    """Write ``<root>/iwildcam_v2.0`` in the WILDS v2.0 layout and return it.

    Args:
        root: folder to pass to ``wilds.get_dataset('iwildcam', root_dir=root)``.
        samples: iterable (streamed, images are written one by one) of dicts
            with ``image`` (PIL image or HxWx3 uint8 array), ``split`` (one of
            train/val/test/id_val/id_test), ``y`` (int), ``location`` (int,
            written as ``location_remapped`` and ``location``), optional
            ``datetime`` (datetime or ``'%Y-%m-%d %H:%M:%S.%f'`` string;
            default: one fake hour per sample from 2013-06-01) and optional
            ``sequence`` (int ``sequence_remapped``; samples without one get
            a sequence of their own, numbered after the explicit ones).
        categories: ``(y, category_id, name)`` rows of ``categories.csv``;
            must list exactly the labels 0..max(y). Default
            ``(y, y, f'class_{y}')`` for every label seen.
        jpeg_quality: JPEG quality of the written images.
        overwrite: replace an existing ``iwildcam_v2.0`` folder.

    Raises:
        ValueError: when labels, locations or explicit sequences are not
            contiguous 0..max (which ``IWildCamDataset`` asserts), on an
            unknown split, bad types or an inconsistent ``categories``.
    """
    name = 'write_iwildcam'
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f'{name}: jpeg_quality must be in 1..100, got '
                         f'{jpeg_quality}.')
    final, partial = _start_folder(root, IWILDCAM_FOLDER, overwrite)
    try:
        (partial / 'train').mkdir()
        rows: List[Dict[str, Any]] = []
        for index, sample in enumerate(samples):
            where = f'{name}: sample {index}'
            split = _require(sample, 'split', where)
            _check_keys(sample, _IWILDCAM_SAMPLE_KEYS, where)
            if split not in IWILDCAM_SPLITS:
                raise ValueError(f'{where}: unknown split {split!r}; use one '
                                 f'of {IWILDCAM_SPLITS}.')
            y = _as_int(_require(sample, 'y', where), 'y', where)
            location = _as_int(
                _require(sample, 'location', where), 'location', where)
            sequence = sample.get('sequence')
            if sequence is not None:
                sequence = _as_int(sequence, 'sequence', where)
            image = _as_rgb(_require(sample, 'image', where), where)
            filename = f'{_hex_id("iwildcam", index)}.jpg'
            image.save(partial / 'train' / filename, format='JPEG',
                       quality=int(jpeg_quality))
            rows.append(dict(
                split=split, location_remapped=location, location=location,
                sequence_remapped=sequence,
                datetime=_iwildcam_datetime(sample.get('datetime'), index,
                                            where),
                y=y, filename=filename, image_id=filename[:-len('.jpg')]))
        if not rows:
            raise ValueError(f'{name}: no samples given; iWildCam needs at '
                             f'least one image.')
        _check_contiguous((r['y'] for r in rows), name, 'labels "y"',
                          'Relabel the classes to 0..C-1 or add samples of '
                          'the missing labels.')
        _check_contiguous((r['location_remapped'] for r in rows), name,
                          '"location" ids',
                          'Renumber the locations to 0..L-1.')
        explicit = [r['sequence_remapped'] for r in rows
                    if r['sequence_remapped'] is not None]
        _check_contiguous(explicit, name, 'explicit "sequence" ids',
                          'Renumber the sequences to 0..S-1 or leave '
                          '"sequence" out to get one sequence per image.')
        next_sequence = max(explicit, default=-1) + 1
        frames: Dict[int, int] = {}
        for row in rows:
            if row['sequence_remapped'] is None:
                row['sequence_remapped'] = next_sequence
                next_sequence += 1
            seq = row['sequence_remapped']
            frames[seq] = frames.get(seq, 0) + 1
            row['frame_num'] = frames[seq]
            row['seq_id'] = _hex_id('iwildcam-seq', seq)
        for row in rows:
            row['seq_num_frames'] = frames[row['sequence_remapped']]
        _write_csv(partial / 'metadata.csv', IWILDCAM_METADATA_COLUMNS, rows)
        _write_csv(partial / 'categories.csv', IWILDCAM_CATEGORY_COLUMNS,
                   _iwildcam_categories(categories,
                                        max(r['y'] for r in rows), name))
        (partial / 'RELEASE_v2.0.txt').write_text(
            'iWildCam v2.0 layout written by '
            'tools/dataset_tools/wilds_layout.py.\n')
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _finish_folder(final, partial)
    return final


def _iwildcam_categories(categories: Optional[Sequence[Tuple[int, int, str]]],
                         max_y: int, name: str) -> List[Dict[str, Any]]:
    if categories is None:
        return [dict(y=y, category_id=y, name=f'class_{y}')
                for y in range(max_y + 1)]
    rows = []
    for entry in categories:
        if len(entry) != 3:
            raise ValueError(f'{name}: categories entries must be '
                             f'(y, category_id, name), got {entry!r}.')
        y, category_id, label = entry
        rows.append(dict(y=int(y), category_id=int(category_id),
                         name=str(label)))
    ys = [r['y'] for r in rows]
    if sorted(ys) != list(range(max_y + 1)):
        raise ValueError(
            f'{name}: categories must list each label 0..{max_y} exactly '
            f'once (the labels of the samples), got y values {sorted(ys)}.')
    return sorted(rows, key=lambda r: r['y'])


def tiny_iwildcam_samples(seed: int = 0,
                          n_classes: int = 6,
                          size: Tuple[int, int] = (64, 48),
                          per_class: Optional[Mapping[str, int]] = None
                          ) -> Iterator[Dict[str, Any]]:
    """Yield a tiny iWildCam: every split populated, all classes in train.

    Locations 0-3 are ID (train / id_val / id_test on different days), 4-5
    are the OOD ``val`` cameras and 6-7 the OOD ``test`` cameras; train
    images come in two-frame sequences. ``per_class`` gives images per class
    and split (default train 3, every other split 1).
    """
    counts = {'train': 3, 'id_val': 1, 'id_test': 1, 'val': 1, 'test': 1}
    counts.update(per_class or {})
    locations = {'train': (0, 1, 2, 3), 'id_val': (0, 1, 2, 3),
                 'id_test': (0, 1, 2, 3), 'val': (4, 5), 'test': (6, 7)}
    first_day = {'train': dt.datetime(2013, 1, 1),
                 'id_val': dt.datetime(2014, 1, 1),
                 'id_test': dt.datetime(2014, 6, 1),
                 'val': dt.datetime(2015, 1, 1),
                 'test': dt.datetime(2015, 6, 1)}
    rng = np.random.default_rng(seed)
    sequence = 0
    for split in ('train', 'id_val', 'id_test', 'val', 'test'):
        k = 0
        for y in range(n_classes):
            for _ in range(counts[split]):
                locs = locations[split]
                frames = 2 if split == 'train' else 1
                time = first_day[split] + dt.timedelta(
                    days=k, minutes=int(rng.integers(0, 24 * 60)))
                for frame in range(frames):
                    yield dict(image=random_image(rng, size), split=split,
                               y=y, location=locs[k % len(locs)],
                               sequence=sequence,
                               datetime=time + dt.timedelta(seconds=frame))
                sequence += 1
                k += 1


# --------------------------------------------------------------------------
# FMoW


def _fmow_timestamp(value: Any, split: str, index: int,
                    where: str) -> dt.datetime:
    _, first, last = FMOW_SPLIT_RULES[split]
    if value is None:
        # Deterministic fake time inside the split's years.
        year = first + index % (last - first + 1)
        return dt.datetime(year, 1 + index % 12, 1 + index % 28, index % 24,
                           tzinfo=dt.timezone.utc)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace('Z', '+00:00'))
        except ValueError:
            raise ValueError(f'{where}: "timestamp" {value!r} is not an ISO '
                             f'date such as "2016-02-06T10:42:57Z".') from None
    if not isinstance(value, dt.datetime):
        raise TypeError(f'{where}: "timestamp" must be a datetime or an ISO '
                        f'string, got {type(value).__name__}.')
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    if not first <= value.year <= last:
        raise ValueError(
            f'{where}: timestamp {value:%Y-%m-%d} (year {value.year}) cannot '
            f'be in WILDS split {split!r}, which takes years {first}-{last} '
            f'under split scheme "official" (time_after_2016). Use '
            f'fmow_sample_for_split({split!r}, rng) or change the split.')
    return value


def fmow_sample_for_split(split: str,
                          rng: Union[np.random.Generator, int]
                          ) -> Dict[str, Any]:
    """Return ``{'split', 'timestamp'}`` landing a sample in a WILDS FMoW split.

    ``split`` is a WILDS split (train/id_val/id_test/val/test) or ``'seq'``
    (sequestered, dropped by wilds); the timestamp is a random UTC time in
    the years that split takes (see :data:`FMOW_SPLIT_RULES`). Merge it into
    a sample::

        dict(image=img, y=3, country_code='FRA',
             **fmow_sample_for_split('val', rng))
    """
    if split not in FMOW_SPLIT_RULES:
        raise ValueError(f'fmow_sample_for_split: unknown split {split!r}; '
                         f'use one of {tuple(FMOW_SPLIT_RULES)}.')
    rng = np.random.default_rng(rng)
    _, first, last = FMOW_SPLIT_RULES[split]
    start = dt.datetime(first, 1, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(last + 1, 1, 1, tzinfo=dt.timezone.utc)
    seconds = int(rng.integers(0, int((end - start).total_seconds())))
    return dict(split=split, timestamp=start + dt.timedelta(seconds=seconds))


def write_fmow(root: PathLike,
               samples: Iterable[Mapping[str, Any]],
               jpeg_quality: Optional[int] = None,
               *,
               overwrite: bool = False) -> pathlib.Path:
    """Write ``<root>/fmow_v1.1`` in the WILDS v1.1 layout and return it.

    Args:
        root: folder to pass to ``wilds.get_dataset('fmow', root_dir=root)``.
        samples: iterable (streamed) of dicts with ``image`` (PIL image or
            HxWx3 uint8 array), ``y`` (index into
            ``wilds.datasets.fmow_dataset.categories``), ``country_code``
            (ISO alpha-3; codes outside :data:`FMOW_COUNTRY_REGIONS` get
            region 'Other', as in wilds), ``split`` (the WILDS split:
            train/id_val/id_test/val/test, or 'seq'), optional ``timestamp``
            (datetime, naive = UTC, or ISO string; must lie in the split's
            years, default: a fake time in them), optional ``lat``/``lon``
            and ``cloud_cover``.
        jpeg_quality: None writes the pixels losslessly; an int first passes
            each image through JPEG at that quality (the real PNGs were made
            from JPEG sources), then stores the PNG.
        overwrite: replace an existing ``fmow_v1.1`` folder.
    """
    from wilds.datasets.fmow_dataset import categories as fmow_categories

    name = 'write_fmow'
    if jpeg_quality is not None and not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f'{name}: jpeg_quality must be None or in 1..100, '
                         f'got {jpeg_quality}.')
    final, partial = _start_folder(root, FMOW_FOLDER, overwrite)
    try:
        (partial / 'images').mkdir()
        rows: List[Dict[str, Any]] = []
        for index, sample in enumerate(samples):
            where = f'{name}: sample {index}'
            split = _require(sample, 'split', where)
            _check_keys(sample, _FMOW_SAMPLE_KEYS, where)
            if split not in FMOW_SPLIT_RULES:
                raise ValueError(
                    f'{where}: unknown split {split!r}; use a WILDS split '
                    f'{FMOW_SPLITS} or "seq".')
            y = _as_int(_require(sample, 'y', where), 'y', where)
            if y >= len(fmow_categories):
                raise ValueError(f'{where}: "y"={y} is not an FMoW class '
                                 f'index (0..{len(fmow_categories) - 1}).')
            code = _require(sample, 'country_code', where)
            if not isinstance(code, str) or not code:
                raise ValueError(f'{where}: "country_code" must be an ISO '
                                 f'alpha-3 string such as "USA", got '
                                 f'{code!r}.')
            timestamp = _fmow_timestamp(sample.get('timestamp'), split, index,
                                        where)
            image = _as_rgb(_require(sample, 'image', where), where)
            if jpeg_quality is not None:
                image = jpeg_roundtrip(image, int(jpeg_quality))
            image.save(partial / 'images' / f'rgb_img_{index}.png',
                       format='PNG')
            default_lat, default_lon = _COUNTRY_LATLON.get(code, (0.0, 0.0))
            category = fmow_categories[y]
            metadata_split = FMOW_SPLIT_RULES[split][0]
            stem = f'{category}_{index}'
            rows.append(dict(
                split=metadata_split,
                img_filename=f'{stem}_0_rgb.jpg',
                img_path=(f'{metadata_split}/{category}/{stem}/'
                          f'{stem}_0_rgb.jpg'),
                spatial_reference=_WGS84_WKT, epsg=4326, category=category,
                visible=True, img_width=image.width, img_height=image.height,
                country_code=code,
                cloud_cover=int(sample.get('cloud_cover', 0)),
                timestamp=timestamp.strftime(_FMOW_TIMESTAMP_FORMAT),
                lat=float(sample.get('lat', default_lat)),
                lon=float(sample.get('lon', default_lon)),
                region=FMOW_COUNTRY_REGIONS.get(code, FMOW_OTHER_REGION)))
        if not rows:
            raise ValueError(f'{name}: no samples given; FMoW needs at least '
                             f'one image.')
        _write_csv(partial / 'rgb_metadata.csv', FMOW_METADATA_COLUMNS, rows)
        _write_csv(partial / 'country_code_mapping.csv', FMOW_COUNTRY_COLUMNS,
                   _country_rows())
        (partial / 'RELEASE_v1.1.txt').write_text(
            'FMoW v1.1 layout written by '
            'tools/dataset_tools/wilds_layout.py.\n')
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _finish_folder(final, partial)
    return final


def jpeg_roundtrip(image: Image.Image, quality: int) -> Image.Image:
    """``image`` as it comes back from a JPEG file of ``quality`` (the real
    FMoW PNGs were made from JPEGs; the toy world stores JPEGs)."""
    import io
    buffer = io.BytesIO()
    image.save(buffer, format='JPEG', quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert('RGB')


def _country_rows() -> List[Dict[str, Any]]:
    rows = []
    for (name, alpha2, alpha3, numeric, region, sub_region, region_code,
         sub_region_code, _, _) in _COUNTRIES:
        rows.append({
            'name': name, 'alpha-2': alpha2, 'alpha-3': alpha3,
            'country-code': f'{numeric:03d}',
            'iso_3166-2': f'ISO 3166-2:{alpha2}',
            'region': region, 'sub-region': sub_region,
            'intermediate-region': '', 'region-code': f'{region_code:03d}',
            'sub-region-code': f'{sub_region_code:03d}',
            'intermediate-region-code': ''})
    return rows


def tiny_fmow_samples(seed: int = 0,
                      size: Tuple[int, int] = (32, 32),
                      per_split: int = 12,
                      n_classes: int = 4,
                      n_seq: int = 2) -> Iterator[Dict[str, Any]]:
    """Yield a tiny FMoW: all five splits, every region and 'Other' in each.

    Each split gets ``per_split`` images cycling through one country of each
    of the five regions plus the unmapped :data:`FMOW_OTHER_COUNTRY`, and
    through the first ``n_classes`` classes; ``n_seq`` sequestered images
    are interleaved (wilds drops them, so image indices skip rows). The
    first train image is from 2002, the first year wilds groups by.
    """
    rng = np.random.default_rng(seed)
    countries = ('CHN', 'FRA', 'NGA', 'USA', 'AUS', FMOW_OTHER_COUNTRY)
    seq_left = n_seq
    for split in FMOW_SPLITS:
        for k in range(per_split):
            sample = dict(image=random_image(rng, size), y=k % n_classes,
                          country_code=countries[k % len(countries)],
                          **fmow_sample_for_split(split, rng))
            if split == 'train' and k == 0:
                # Year 2002 present: wilds' year grouper then starts at 0.
                sample['timestamp'] = sample['timestamp'].replace(year=2002)
            yield sample
        if seq_left > 0:
            seq_left -= 1
            yield dict(image=random_image(rng, size), y=0,
                       country_code='USA', **fmow_sample_for_split('seq', rng))
