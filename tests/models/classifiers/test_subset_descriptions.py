"""ImageNet-R / -A classifiers find their descriptions in imagenet.json."""
import pytest

from drm_mm.datasets.classnames import class_subset_indices
from drm_mm.models.classifiers.drm_classifier import DRMClassifier
from drm_mm.prompts import load_descriptions


@pytest.mark.parametrize('subset', ['imagenet_r', 'imagenet_a'])
def test_subset_classifier_loads_the_imagenet_descriptions(subset):
    from drm_mm.datasets.classnames import get_class_keys
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=subset, templates='imagenet',
        descriptions='imagenet.json', loss=dict(erm='ce', wrm_weight=0.0))
    full = load_descriptions('imagenet.json', get_class_keys('imagenet'))
    assert model.descriptions == [full[i]
                                  for i in class_subset_indices(subset)]
    assert len(model.descriptions) == 200
