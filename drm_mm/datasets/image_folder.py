"""``ImageFolder``: the user's own images in MMPretrain's ``CustomDataset``
layouts, with labels in the order of the class list the model uses."""
from __future__ import annotations

import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

from mmengine.fileio import list_from_file
from mmpretrain.datasets import CustomDataset
from mmpretrain.datasets.custom import get_samples

from drm_mm.datasets.config_refs import DATA_ROOT_HINT, check_resolved
from drm_mm.registry import DATASETS


def read_classes(classes: Union[str, os.PathLike, Sequence[str], None]
                 ) -> Optional[List[str]]:
    """Class names in label order from a list, or a text file with one name
    per line (blank lines skipped); ``None`` stays ``None``."""
    if classes is None:
        return None
    if isinstance(classes, (str, os.PathLike)):
        path = os.fspath(classes)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'ImageFolder: classes={path!r} is neither a list of class '
                f'names nor an existing text file (one name per line); set '
                f'the config\'s `classes`.')
        return [line.strip() for line in list_from_file(path)
                if line.strip()]
    return [str(c) for c in classes]


@DATASETS.register_module()
class ImageFolder(CustomDataset):
    """Images of the user's classes, for DRM on one's own data.

    Two layouts, as MMPretrain's ``CustomDataset``:

    * one folder per class: ``<data_root>/<data_prefix>/<folder>/*.jpg``,
      where ``<folder>`` is the class name, or the name with spaces
      written as underscores (``red fox`` -> ``red_fox/``);
    * an annotation file ``ann_file`` with lines ``<path> <label index>``
      (paths relative to ``<data_root>/<data_prefix>``).

    Unlike ``CustomDataset``, a folder's label is the position of its class
    in ``classes`` (the list the model's prompts use), not its position in
    the sorted folder names, and a folder that names no class is an error;
    a split may hold a subset of the classes (e.g. an OOD test set).

    Args:
        data_root (str): the dataset folder. drm_mm's image-folder base
            config passes ``'${data_root}'`` (the config's one data root).
        data_prefix (str): the split's folder under ``data_root``
            (e.g. ``'train'``, ``'val'``). Defaults to ``''``.
        classes (list[str] | str | None): class names in label order, or a
            text file with one per line; ``None``: the sorted folder names.
            Defaults to None.
        **kwargs: the other arguments of ``CustomDataset`` (``ann_file``,
            ``pipeline``, ``extensions``, ``test_mode`` ...).
    """

    def __init__(self,
                 data_root: str = '',
                 data_prefix: Union[str, Dict] = '',
                 classes: Union[str, Sequence[str], None] = None,
                 **kwargs: Any) -> None:
        check_resolved('ImageFolder', 'data_root', data_root)
        check_resolved('ImageFolder', 'classes', classes)
        if data_root is None:
            raise ValueError(f'ImageFolder: no data_root. {DATA_ROOT_HINT}')
        super().__init__(data_root=osp.expanduser(str(data_root)),
                         data_prefix=data_prefix,
                         classes=read_classes(classes), **kwargs)

    def _find_samples(self) -> list:
        if not self.with_label:
            return super()._find_samples()
        root = self.img_prefix
        if not osp.isdir(root):
            raise FileNotFoundError(
                f'ImageFolder: {root} does not exist (data_root='
                f'{self.data_root!r}, data_prefix='
                f'{self.data_prefix.get("img_path", "")!r}). '
                f'{DATA_ROOT_HINT}')
        folders = sorted(d for d in os.listdir(root)
                         if osp.isdir(osp.join(root, d)))
        classes = self._metainfo.get('classes')
        if classes is None:
            classes = tuple(folders)
            self._metainfo['classes'] = classes
        index: Dict[str, int] = {}
        for i, name in enumerate(classes):
            index.setdefault(name, i)
            index.setdefault(name.replace(' ', '_'), i)
        unknown = [f for f in folders if f not in index]
        if unknown:
            raise ValueError(
                f'ImageFolder: folders {unknown[:5]} under {root} name no '
                f'class of `classes` ({len(classes)} names, e.g. '
                f'{list(classes[:3])}); name each folder after its class '
                f'(spaces may be underscores) or fix `classes`.')
        folder_to_idx = {f: index[f] for f in folders}
        self.folder_to_idx = folder_to_idx
        samples, _ = get_samples(root, folder_to_idx,
                                 is_valid_file=self.is_valid_file)
        if not samples:
            raise RuntimeError(
                f'ImageFolder: no image under {root} (extensions '
                f'{sorted(self.extensions)}).')
        return samples
