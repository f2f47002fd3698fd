"""``LoadImageDraft``: load an image, decoding large JPEGs at a reduced scale.

iWildCam images are ~1920x1080 JPEGs that the pipeline shrinks to 224 px:
a JPEG decoder can produce 1/2, 1/4 or 1/8 of the size directly from the DCT
coefficients (PIL ``Image.draft``), several times faster than a full decode.
Other formats (PNG...) and ``min_size=None`` are decoded exactly.
Truncated, corrupt or empty files raise :class:`CorruptImageError` naming
the file (datasets with ``skip_corrupt=True`` skip such samples); an image
of more than ``max_pixels`` pixels (a decompression bomb) raises
:class:`ImageTooLargeError` before it is decoded. 16-bit greyscale images
are scaled to 8 bit (not clipped).
"""
from __future__ import annotations

import io
import logging
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.logging import print_log
from PIL import Image, ImageFile, ImageOps

from drm_mm.registry import TRANSFORMS


class CorruptImageError(OSError):
    """An image file exists but cannot be decoded (truncated, corrupt)."""

    def __init__(self, path: str, reason: BaseException) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f'cannot decode image {self.path}: {type(reason).__name__}: '
            f'{reason}. The file is truncated or corrupt: re-download or '
            f'replace it, or build the (training) dataset with '
            f'skip_corrupt=True to skip such files.')

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (type(self), (self.path, self.reason))


#: Default ``max_pixels``: 100 megapixels (a 300 MB RGB array).
DEFAULT_MAX_PIXELS = 100_000_000

_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


class ImageTooLargeError(ValueError):
    """An image has more pixels than allowed (maybe a decompression bomb)."""

    def __init__(self, path: str, pixels: int, limit: int,
                 setting: str = 'LoadImageDraft(max_pixels=...)') -> None:
        self.path, self.pixels, self.limit = str(path), int(pixels), limit
        self.setting = setting
        super().__init__(
            f'image {self.path} has {self.pixels} pixels, more than the '
            f'limit of {limit} (maybe a decompression bomb): remove the file '
            f'or raise {setting}.')

    def __reduce__(self):
        return (type(self), (self.path, self.pixels, self.limit,
                             self.setting))


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """H x W x 3 uint8 RGB; 16-bit greyscale scaled by 255 / 65535."""
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = np.asarray(image).astype(np.float64) / 257.0
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    rgb = image if image.mode == 'RGB' else image.convert('RGB')
    return np.asarray(rgb)


@TRANSFORMS.register_module()
class LoadImageDraft(BaseTransform):
    """Load ``results['img_path']`` with PIL, JPEGs maybe at reduced scale.

    Drop-in for MMPretrain's ``LoadImageFromFile`` (same output keys, BGR
    uint8 by default, so a ``ClsDataPreprocessor(to_rgb=True)`` works
    unchanged). Images are converted to RGB like the PIL loaders of WILDS /
    torchvision that the published numbers used; EXIF orientation is left
    alone unless ``exif_transpose=True``.

    Args:
        min_size: None decodes every image at full size (exact). An int lets
            a JPEG be decoded at 1/2, 1/4 or 1/8 scale as long as its shorter
            side stays >= ``min_size`` (a ``(w, h)`` pair bounds each side).
            Choose it >= the size the pipeline resizes to, with the margin
            its crops need (e.g. 256 for a 224-px RandomResizedCrop with
            scale 0.9-1.0, or 224 for resize-224 + center-crop).
        channel_order: ``'bgr'`` (mmcv default) or ``'rgb'``.
        to_float32: return a float32 array instead of uint8.
        exif_transpose: apply the EXIF orientation tag (mmcv does; the WILDS
            and torchvision PIL loaders do not).
        backend_args: MMEngine file backend arguments (e.g. for petrel/S3).
        max_pixels: refuse images of more pixels (width x height) before
            decoding them; default :data:`DEFAULT_MAX_PIXELS` (100 M).
            PIL's own limit (``Image.MAX_IMAGE_PIXELS``) applies as well.

    Added keys: ``img``, ``img_shape`` (decoded H, W), ``ori_shape`` (H, W of
    the file), ``draft_scale`` (1, 2, 4 or 8: file size / decoded size).
    """

    def __init__(self,
                 min_size: Union[None, int, Sequence[int]] = None,
                 channel_order: str = 'bgr',
                 to_float32: bool = False,
                 exif_transpose: bool = False,
                 backend_args: Optional[dict] = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if isinstance(max_pixels, bool) or not isinstance(
                max_pixels, (int, np.integer)) or max_pixels < 1:
            raise ValueError(f'LoadImageDraft: max_pixels must be a positive '
                             f'integer, got {max_pixels!r}.')
        self.max_pixels = int(max_pixels)
        self.min_size = self._check_min_size(min_size)
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(f'LoadImageDraft: channel_order must be "bgr" or '
                             f'"rgb", got {channel_order!r}.')
        self.channel_order = channel_order
        self.to_float32 = bool(to_float32)
        self.exif_transpose = bool(exif_transpose)
        self.backend_args = None if backend_args is None else dict(
            backend_args)
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            print_log('LoadImageDraft: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is '
                      'True (set by some imported library), so truncated '
                      'images decode with grey fill instead of raising.',
                      logger='current', level=logging.WARNING)

    @staticmethod
    def _check_min_size(min_size: Union[None, int, Sequence[int]]
                        ) -> Optional[Tuple[int, ...]]:
        if min_size is None:
            return None
        if isinstance(min_size, (int, np.integer)) and not isinstance(
                min_size, bool):
            sizes: Tuple[int, ...] = (int(min_size),)
        elif (isinstance(min_size, (tuple, list)) and len(min_size) == 2
              and all(isinstance(s, (int, np.integer)) for s in min_size)):
            sizes = (int(min_size[0]), int(min_size[1]))
        else:
            raise TypeError(f'LoadImageDraft: min_size must be None, an int '
                            f'(shorter side) or a (w, h) pair, got '
                            f'{min_size!r}.')
        if min(sizes) < 1:
            raise ValueError(f'LoadImageDraft: min_size must be >= 1, got '
                             f'{min_size!r}.')
        return sizes

    def _requested_size(self, width: int, height: int) -> Tuple[int, int]:
        """Smallest (w, h) PIL's draft must keep: every side >= the bound."""
        assert self.min_size is not None
        if len(self.min_size) == 2:
            return self.min_size[0], self.min_size[1]
        short = min(width, height)
        ratio = self.min_size[0] / short
        return (max(1, int(np.ceil(width * ratio))),
                max(1, int(np.ceil(height * ratio))))

    def _decoded(self, results: dict) -> dict:
        """An image decoded already as BGR (MMPretrain's inferencers load
        it themselves): only the channel order and dtype are applied."""
        array = np.asarray(results['img'])
        if self.channel_order == 'rgb':
            array = np.ascontiguousarray(array[..., ::-1])
        if self.to_float32:
            array = array.astype(np.float32)
        results['img'] = array
        results['img_shape'] = array.shape[:2]
        results.setdefault('ori_shape', array.shape[:2])
        return results

    def transform(self, results: dict) -> dict:
        if 'img_path' not in results and 'img' in results:
            return self._decoded(results)
        path = results['img_path']
        img_bytes = fileio.get(path, backend_args=self.backend_args)
        if not img_bytes:
            raise CorruptImageError(path, EOFError('the file is empty (0 '
                                                   'bytes)'))
        try:
            with Image.open(io.BytesIO(img_bytes)) as image:
                ori_w, ori_h = image.size
                if ori_w * ori_h > self.max_pixels:
                    raise ImageTooLargeError(path, ori_w * ori_h,
                                             self.max_pixels)
                if self.min_size is not None and image.format == 'JPEG':
                    req_w, req_h = self._requested_size(ori_w, ori_h)
                    if req_w < ori_w and req_h < ori_h:
                        image.draft(image.mode, (req_w, req_h))
                image.load()  # raises on a truncated / corrupt file
                if self.exif_transpose:
                    image = ImageOps.exif_transpose(image)
                array = _to_rgb_array(image)
        except ImageTooLargeError:
            raise
        except Image.DecompressionBombError as err:  # PIL checks first
            pixels = int(str(err).split('(')[1].split()[0])
            if pixels > self.max_pixels:
                raise ImageTooLargeError(path, pixels,
                                         self.max_pixels) from None
            raise ImageTooLargeError(path, pixels, 2 * Image.MAX_IMAGE_PIXELS,
                                     'PIL.Image.MAX_IMAGE_PIXELS') from None
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise CorruptImageError(path, err) from err
        if self.channel_order == 'bgr':
            array = array[..., ::-1]
        array = np.ascontiguousarray(array)
        if self.to_float32:
            array = array.astype(np.float32)
        results['img'] = array
        results['img_shape'] = array.shape[:2]
        results['ori_shape'] = (ori_h, ori_w)
        results['draft_scale'] = max(1, int(round(ori_w / array.shape[1])))
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(min_size={self.min_size}, '
                f"channel_order='{self.channel_order}', "
                f'to_float32={self.to_float32}, '
                f'exif_transpose={self.exif_transpose}, '
                f'backend_args={self.backend_args}, '
                f'max_pixels={self.max_pixels})')
