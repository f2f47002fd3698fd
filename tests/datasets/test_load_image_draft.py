"""LoadImageDraft: exact full decode, reduced-scale JPEG, named errors."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from PIL import Image

from drm_mm.datasets.transforms.crop_border import CropBorder
from drm_mm.datasets.transforms.load_image_draft import (CorruptImageError,
                                                         LoadImageDraft)
from drm_mm.registry import TRANSFORMS


def _smooth_image(width: int, height: int) -> Image.Image:
    """A smooth gradient (JPEG-friendly), so scaled decodes stay comparable."""
    x = np.linspace(0, 255, width)[None, :]
    y = np.linspace(0, 255, height)[:, None]
    pixels = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8), mode='RGB')


@pytest.fixture
def jpeg_path(tmp_path):
    path = tmp_path / 'big.jpg'
    _smooth_image(800, 600).save(path, quality=92)
    return path


@pytest.fixture
def png_path(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / 'img.png'
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(
        path)
    return path


def _mmcv(path):
    return LoadImageFromFile(imdecode_backend='pillow')(
        dict(img_path=str(path)))['img']


@pytest.mark.parametrize('min_size', [None, 8])
def test_png_is_exact_whatever_min_size(png_path, min_size):
    out = LoadImageDraft(min_size=min_size)(dict(img_path=str(png_path)))
    np.testing.assert_array_equal(out['img'], _mmcv(png_path))
    assert out['img_shape'] == out['ori_shape'] == (30, 40)
    assert out['draft_scale'] == 1


def test_jpeg_without_min_size_equals_full_decode(jpeg_path):
    out = LoadImageDraft()(dict(img_path=str(jpeg_path)))
    np.testing.assert_array_equal(out['img'], _mmcv(jpeg_path))
    assert out['img'].dtype == np.uint8


def test_jpeg_is_decoded_at_reduced_scale(jpeg_path):
    out = LoadImageDraft(min_size=150)(dict(img_path=str(jpeg_path)))
    assert out['ori_shape'] == (600, 800)
    assert out['img_shape'] == (150, 200)  # 1/4: the shorter side stays >= 150
    assert out['draft_scale'] == 4
    # Close to the full decode shrunk by 4 (a smooth image).
    full = Image.fromarray(_mmcv(jpeg_path)[..., ::-1])
    shrunk = np.asarray(full.resize((200, 150), Image.BILINEAR))[..., ::-1]
    assert np.abs(out['img'].astype(int) - shrunk.astype(int)).mean() < 3


@pytest.mark.parametrize('min_size, expected', [(151, (300, 400)),
                                                (300, (300, 400)),
                                                (301, (600, 800)),
                                                (5000, (600, 800)),
                                                ((100, 70), (75, 100))])
def test_draft_keeps_every_side_above_min_size(jpeg_path, min_size, expected):
    out = LoadImageDraft(min_size=min_size)(dict(img_path=str(jpeg_path)))
    assert out['img_shape'] == expected


def test_channel_order_and_float(png_path):
    bgr = LoadImageDraft()(dict(img_path=str(png_path)))['img']
    rgb = LoadImageDraft(channel_order='rgb', to_float32=True)(
        dict(img_path=str(png_path)))['img']
    assert rgb.dtype == np.float32
    np.testing.assert_array_equal(rgb, bgr[..., ::-1].astype(np.float32))


def test_grayscale_becomes_three_channels(tmp_path):
    path = tmp_path / 'gray.jpg'
    Image.fromarray(np.full((20, 24), 128, np.uint8), mode='L').save(path)
    out = LoadImageDraft(min_size=4)(dict(img_path=str(path)))
    assert out['img'].shape[2] == 3


def test_truncated_jpeg_raises_naming_the_file(jpeg_path, tmp_path):
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(jpeg_path.read_bytes()[:2000])
    for min_size in (None, 150):
        with pytest.raises(CorruptImageError) as err:
            LoadImageDraft(min_size=min_size)(dict(img_path=str(broken)))
        assert str(broken) in str(err.value)
        assert 'skip_corrupt' in str(err.value)


def test_garbage_file_raises_corrupt_error(tmp_path):
    path = tmp_path / 'not_an_image.jpg'
    path.write_bytes(b'this is not an image')
    with pytest.raises(CorruptImageError, match='not_an_image.jpg'):
        LoadImageDraft()(dict(img_path=str(path)))


def test_missing_file_is_not_reported_as_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.jpg'):
        LoadImageDraft()(dict(img_path=str(tmp_path / 'nothere.jpg')))


def test_corrupt_error_survives_pickling():
    err = CorruptImageError('/x/y.jpg', OSError('truncated'))
    copy = pickle.loads(pickle.dumps(err))
    assert copy.path == '/x/y.jpg' and '/x/y.jpg' in str(copy)


@pytest.mark.parametrize('kwargs', [dict(min_size=0), dict(min_size=1.5),
                                    dict(min_size=(1, 2, 3)),
                                    dict(channel_order='rgba')])
def test_bad_arguments_are_named(kwargs):
    with pytest.raises((TypeError, ValueError), match='LoadImageDraft'):
        LoadImageDraft(**kwargs)


def test_registered_and_works_with_mmpretrain_transforms(jpeg_path):
    pipeline = [TRANSFORMS.build(dict(type='LoadImageDraft', min_size=64)),
                TRANSFORMS.build(dict(type='ResizeEdge', scale=64,
                                      edge='short')),
                TRANSFORMS.build(dict(type='CenterCrop', crop_size=64)),
                TRANSFORMS.build(dict(type='PackInputs'))]
    results = dict(img_path=str(jpeg_path))
    for t in pipeline:
        results = t(results)
    assert results['inputs'].shape == (3, 64, 64)


def test_crop_border_removes_frame():
    img = np.zeros((10, 12, 3), np.uint8)
    img[0, :] = img[-1, :] = img[:, 0] = img[:, -1] = 255
    out = CropBorder(1)(dict(img=img))
    assert out['img'].shape == (8, 10, 3) and out['img'].max() == 0
    assert out['img_shape'] == (8, 10)
    with pytest.raises(ValueError, match='border'):
        CropBorder(-1)
    with pytest.raises(ValueError, match='too small'):
        CropBorder(5)(dict(img=img))


def test_image_decoded_by_an_inferencer_passes_through(png_path):
    """MMPretrain's inferencers decode the image (BGR) before the test
    pipeline; LoadImageDraft then only applies channel order and dtype."""
    from mmcv import imread
    img = imread(str(png_path))
    from_file = LoadImageDraft()(dict(img_path=str(png_path)))
    decoded = LoadImageDraft()(dict(img=img.copy(), ori_shape=(30, 40)))
    np.testing.assert_array_equal(decoded['img'], from_file['img'])
    assert decoded['img_shape'] == decoded['ori_shape'] == (30, 40)
    rgb = LoadImageDraft(channel_order='rgb', to_float32=True)(
        dict(img=img.copy()))
    np.testing.assert_array_equal(rgb['img'],
                                  from_file['img'][..., ::-1].astype(
                                      np.float32))


def test_sixteen_bit_png_is_scaled_by_255_over_65535(tmp_path):
    """v / 257 maps 0..65535 onto 0..255; the values 257 * k come back as k
    exactly, and 180 and 200 would round to 181 and 201 with v / 256."""
    import numpy as np
    from PIL import Image

    from drm_mm.datasets.transforms import LoadImageDraft
    levels = np.array([0, 128, 180, 200, 255])
    pixels = (levels * 257).astype(np.uint16).reshape(1, -1)
    path = tmp_path / 'depth.png'
    Image.fromarray(pixels).save(path)
    assert Image.open(path).mode.startswith('I')
    img = LoadImageDraft()(dict(img_path=str(path)))['img']
    assert img.shape == (1, 5, 3)
    assert img[0, :, 0].tolist() == levels.tolist()
    assert (img == img[..., :1]).all()
