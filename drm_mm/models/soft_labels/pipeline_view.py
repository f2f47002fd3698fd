"""``PipelineView``: samples of a dataset through another pipeline, for the
soft-label pass (the training set seen through the test-time transforms),
tolerant of the corrupt images the dataset itself skips."""
import logging
from typing import Any, Sequence

from mmengine.dataset import Compose
from mmengine.logging import print_log
from torch.utils.data import Dataset

from drm_mm.datasets.transforms.load_image_draft import CorruptImageError


def pass_dataset(dataset: Any) -> Any:
    """``dataset``, fully initialised, if the pass can label it (one
    dataset: a concatenation's sample indices are not unique)."""
    name = type(dataset).__name__
    if hasattr(dataset, 'datasets') or name == 'ConcatDataset':
        raise TypeError(
            f'SoftLabelCacheHook: the train dataset is a {name}; its '
            f'sample indices are not unique across the parts. Train on one '
            f'dataset (or merge the annotation lists into one).')
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    return dataset


class PipelineView(Dataset):
    """Samples ``indices`` of ``dataset`` through ``pipeline``.

    A corrupt image of a dataset with ``skip_corrupt=True`` is never yielded
    in training (the dataset retries another index), so its row is never
    looked up: the view fills it from the next sample (one warning) and
    keeps one row per ``sample_idx``.

    Args:
        dataset (BaseDataset): the dataset whose data infos are read.
        pipeline (Compose): the transforms applied to each data info.
        indices (Sequence[int]): the samples of the view, in order.
    """

    def __init__(self, dataset: Any, pipeline: Compose,
                 indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.pipeline = pipeline
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        idx = self.indices[i]
        try:
            data = self.pipeline(self.dataset.get_data_info(idx))
        except CorruptImageError as err:
            if not getattr(self.dataset, 'skip_corrupt', False):
                raise
            print_log(f'soft labels: {err.path} is corrupt; its row (never '
                      f'used in training) is filled from a neighbour.',
                      logger='current', level=logging.WARNING)
            corrupt = getattr(self.dataset, 'corrupt_indices', None)
            if isinstance(corrupt, set):
                corrupt.add(idx)
            return self[(i + 1) % len(self.indices)]
        if data is None:
            raise RuntimeError(f'the soft-label pipeline dropped sample '
                               f'{idx}; it must keep every sample.')
        return data
