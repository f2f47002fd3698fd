"""Model and data must agree: every dataset's ``metainfo['classes']`` is
compared with ``model.classnames`` before train / val / test (by the
``ClassConsistencyHook`` that DRMRunner always adds, whatever tool builds
the runner)."""
import pytest

import _reliability_helpers as H  # loaded by this folder's conftest.py
from drm_mm.datasets.classnames import get_classnames
from drm_mm.engine.hooks import (ClassConsistencyHook, ClassMismatchError,
                                 class_mismatch)


@pytest.mark.parametrize('data,model,subset,expected', [
    (['a', 'b'], ['a', 'b'], None, None),
    (['A  b'], ['a b', 'c'], None, None),  # first k of the model's classes
    (['a', 'b', 'c'], ['a', 'b'], None,
     'the dataset has 3 classes, the model 2'),
    (['a', 'x'], ['a', 'b'], None,
     "label 1 is 'x' in the dataset but 'b' in the model"),
    (['a', 'a'], ['a', 'a'], None, "duplicate category names ['a']"),
    (['c', 'a'], ['a', 'b', 'c'], [2, 0], None),
    (['c', 'b'], ['a', 'b', 'c'], [2, 0],
     "label 1 is 'b' in the dataset but 'a' in the model"),
    (['c'], ['a', 'b', 'c'], [5],
     "class_subset index 5 is outside the model's 3 classes"),
])
def test_class_mismatch(data, model, subset, expected):
    assert class_mismatch(data, model, subset) == expected


def test_builtin_lists_agree_with_themselves():
    for key in ('iwildcam', 'fmow', 'imagenet'):  # ImageNet: 2 duplicates
        names = get_classnames(key)
        assert class_mismatch(names, names) is None, key
    assert class_mismatch(get_classnames('fmow'), get_classnames(
        'iwildcam')) == ("label 0 is 'airport' in the dataset but 'empty' in "
                         'the model')


class _Named(H.ToyPoints):
    metainfo = dict(classes=('cat', 'dog'))


def test_runner_refuses_mismatch_before_training(tmp_path):
    runner = H.toy_runner(tmp_path, max_epochs=1)
    assert sum(isinstance(h, ClassConsistencyHook)
               for h in runner.hooks) == 1
    runner.model.classnames = ['cat', 'cow']
    runner._train_dataloader['dataset'] = _Named()
    with pytest.raises(ClassMismatchError) as err:
        runner.train()
    assert str(err.value) == (
        "_Named (train_dataloader.dataset) does not match the model: label "
        "1 is 'dog' in the dataset but 'cow' in the model. Use the model "
        'config of this dataset (model.classnames) or the dataset of this '
        'model.')
    assert not list(tmp_path.glob('*.pth'))


def test_runner_checks_val_and_test_sets(tmp_path):
    runner = H.toy_runner(tmp_path, max_epochs=1)
    runner.model.classnames = ['cat', 'dog']
    runner._val_dataloader['dataset'] = _Named()
    runner.val()  # agrees
    runner = H.toy_runner(tmp_path, max_epochs=1)
    runner.model.classnames = ['dog', 'cat']
    runner._val_dataloader['dataset'] = _Named()
    with pytest.raises(ClassMismatchError, match=r'^_Named '
                       r'\(val_dataloader.dataset\) does not match the '
                       r"model: label 0 is 'cat' in the dataset but 'dog'"):
        runner.val()


@pytest.mark.slow  # one training subprocess that stops at start-up
def test_train_tool_refuses_a_3_class_model_on_6_class_data(
        tmp_path, fake_iwildcam_root):
    names, desc = H.tiny_class_setup(tmp_path, n=3)
    config = H.write_config(tmp_path / 'cfg.py', fake_iwildcam_root,
                            classes=(names, desc), test_hooks=False)
    code, out = H.run_train(config, tmp_path / 'run')
    assert code == 1, H.tail(out)
    assert ('WILDSIWildCam (train_dataloader.dataset) does not match the '
            'model: the dataset has 6 classes, the model 3.') in out
