"""description_template: cd prompts from descriptions and class names."""
import pytest

from drm_mm.prompts import apply_description_template


def test_default_keeps_descriptions_and_name_template_prefixes():
    descs = [['a small feline'], ['a canine', 'a barking pet']]
    names = ['cat', 'dog']
    assert apply_description_template(descs, names) == descs
    assert apply_description_template(descs, names, '{c} is {d}') == [
        ['cat is a small feline'], ['dog is a canine', 'dog is a barking pet']]


@pytest.mark.parametrize('template', ['{c} is', '', None])
def test_template_without_description_placeholder_is_refused(template):
    with pytest.raises(ValueError,
                       match=r"description_template must .*'\{d\}'"):
        apply_description_template([['x']], ['cat'], template)


def test_classifier_builds_cd_prompts_with_the_template():
    from drm_mm.models.classifiers.drm_classifier import DRMClassifier
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
        classnames=['cat', 'dog'], templates=['a photo of {c}.'],
        descriptions={'cat': 'a small feline', 'dog': ['a canine', 'a pet']},
        description_template='{c} is {d}',
        loss=dict(erm='ce', wrm_weight=0.0))
    assert model.descriptions == [['cat is a small feline'],
                                  ['dog is a canine', 'dog is a pet']]
    with pytest.raises(ValueError, match='description_template'):
        DRMClassifier(clip=dict(type='OpenCLIP', model_name='drm-tiny-vit'),
                      classnames=['cat'], templates=['a photo of {c}.'],
                      descriptions={'cat': 'x'}, description_template='{c}')
