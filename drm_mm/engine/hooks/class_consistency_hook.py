"""``ClassConsistencyHook``: the model's class names and every dataset's
``metainfo['classes']`` must agree before train / val / test."""
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from drm_mm.registry import HOOKS


class ClassMismatchError(ValueError):
    """A dataset's classes do not match ``model.classnames``."""


def _norm(name: Any) -> str:
    return ' '.join(str(name).split()).lower()


def _imagenet_duplicates() -> set:
    """Names that the built-in ImageNet list holds twice (told apart by
    their wnids): the only duplicates accepted."""
    from drm_mm.datasets.classnames import imagenet_classnames
    seen, twice = set(), set()
    for name in map(_norm, imagenet_classnames()):
        (twice if name in seen else seen).add(name)
    return twice


def class_mismatch(dataset_classes: Sequence[str],
                   model_classes: Sequence[str],
                   class_subset: Optional[Sequence[int]] = None
                   ) -> Optional[str]:
    """Why the dataset's classes do not fit the model's, or None.

    Names are compared case- and whitespace-insensitively. A dataset with a
    ``class_subset`` (ImageNet-A/-R) must name ``model_classes[i]`` for each
    of its indices; any other dataset must name the model's classes in
    order (a dataset using only the first k of them fits: its labels index
    the same names).
    """
    data = [_norm(c) for c in dataset_classes]
    model = [_norm(c) for c in model_classes]
    dupes = sorted({c for c in data if data.count(c) > 1} -
                   _imagenet_duplicates())
    if dupes:
        return f'duplicate category names {dupes[:5]}'
    if class_subset is not None:
        subset = [int(i) for i in class_subset]
        if len(subset) != len(data):
            return (f'{len(data)} classes but a class_subset of '
                    f'{len(subset)} indices')
        bad = [i for i in subset if not 0 <= i < len(model)]
        if bad:
            return (f'class_subset index {bad[0]} is outside the model\'s '
                    f'{len(model)} classes')
        model = [model[i] for i in subset]
    elif len(data) > len(model):
        return (f'the dataset has {len(data)} classes, the model '
                f'{len(model)}')
    for pos, (a, b) in enumerate(zip(data, model)):
        if a != b:
            return (f'label {pos} is {dataset_classes[pos]!r} in the dataset '
                    f'but {b!r} in the model')
    return None


@HOOKS.register_module()
class ClassConsistencyHook(Hook):
    """Refuse to train / validate / test when a dataset's classes disagree
    with the model's (see :func:`class_mismatch`): a model of another
    dataset would otherwise train silently on wrong labels.

    ``DRMRunner`` and ``DRMFlexibleRunner`` always add it. Skipped for a
    model without ``classnames`` or a dataset without
    ``metainfo['classes']``.
    """

    priority = 'VERY_HIGH'  # before the soft-label pass

    def __init__(self) -> None:
        self._checked: set = set()

    @staticmethod
    def _loop_sets(loop: Any, stage: str) -> Iterator[Tuple[str, Any]]:
        sets = getattr(loop, 'sets', None)
        if sets:  # drm_mm's multi-dataset loops
            for item in sets:
                yield (f'{stage}_dataloader.{item.name}.dataset',
                       item.dataloader.dataset)
        elif getattr(loop, 'dataloader', None) is not None:
            yield f'{stage}_dataloader.dataset', loop.dataloader.dataset

    def check(self, runner: Any, stages: List[str]) -> None:
        """Check the datasets of ``stages`` ('train', 'val', 'test')."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        names = getattr(model, 'classnames', None)
        if not names:
            return
        for stage in stages:
            if stage in self._checked:
                continue
            self._checked.add(stage)
            loop = getattr(runner, f'_{stage}_loop', None)
            if loop is None or isinstance(loop, dict):
                continue
            for key, dataset in self._loop_sets(loop, stage):
                meta = getattr(dataset, 'metainfo', None) or {}
                classes = meta.get('classes')
                if not classes:
                    continue
                why = class_mismatch(classes, names, meta.get('class_subset'))
                if why is not None:
                    raise ClassMismatchError(
                        f'{type(dataset).__name__} ({key}) does not match '
                        f'the model: {why}. Use the model config of this '
                        'dataset (model.classnames) or the dataset of this '
                        'model.')

    def before_train(self, runner: Any) -> None:
        self.check(runner, ['train', 'val'])

    def before_val(self, runner: Any) -> None:
        self.check(runner, ['val'])

    def before_test(self, runner: Any) -> None:
        self.check(runner, ['test'])
