"""Template lists per dataset and prompt building."""
import open_clip
import pytest

from drm_mm.prompts.templates import (build_prompts, check_templates,
                                      fill_template, get_templates,
                                      list_templates, resolve_templates)


def test_dataset_templates_match_the_drm_evaluation():
    assert get_templates('iwildcam') == ['a photo of {c}.']
    assert get_templates('fmow') == ['satellite photo of a {c}.']
    assert get_templates('imagenet') == ['a good photo of the {c}.']
    assert get_templates('imagenet_r') == get_templates('imagenet')


def test_openai_templates_are_open_clips_80():
    templates = get_templates('imagenet_openai')
    assert len(templates) == 80
    expected = [fn('dog') for fn in open_clip.OPENAI_IMAGENET_TEMPLATES]
    assert [fill_template(t, 'dog') for t in templates] == expected


def test_get_templates_returns_a_fresh_list():
    first = get_templates('iwildcam')
    first.append('x {c}')
    assert get_templates('iwildcam') == ['a photo of {c}.']


def test_unknown_key_names_the_known_ones():
    with pytest.raises(KeyError, match='iwildcam'):
        get_templates('cifar')
    assert 'fmow' in list_templates()


@pytest.mark.parametrize('bad', [[], ['no placeholder'], [3], 'a {c}'])
def test_bad_template_lists_are_rejected(bad):
    with pytest.raises((ValueError, TypeError)):
        check_templates(bad)


def test_resolve_and_build_prompts():
    templates = resolve_templates(['a {c}.', 'the {c}!'])
    prompts = build_prompts(templates, ['cat', 'a {weird} name'])
    assert prompts == [['a cat.', 'the cat!'],
                       ['a a {weird} name.', 'the a {weird} name!']]
    assert resolve_templates('fmow') == ['satellite photo of a {c}.']
