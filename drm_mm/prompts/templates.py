"""Prompt templates (the "default prompts", df) per dataset.

A template is a string with the placeholder ``{c}`` for the class name.
``{c}`` is substituted with :func:`fill_template` (plain replacement, so
braces in class names are safe). The 80 OpenAI ImageNet templates come from
``open_clip.OPENAI_IMAGENET_TEMPLATES``.
"""
from typing import Callable, Dict, List, Sequence, Union

PLACEHOLDER = '{c}'


def _from_open_clip(templates: Sequence[Callable[[str], str]]) -> List[str]:
    """open_clip's templates are functions of the class name; turn them into
    ``{c}`` strings."""
    return [fn(PLACEHOLDER) for fn in templates]


def _openai_imagenet() -> List[str]:
    import open_clip
    return _from_open_clip(open_clip.OPENAI_IMAGENET_TEMPLATES)


def _simple_imagenet() -> List[str]:
    import open_clip
    return _from_open_clip(open_clip.SIMPLE_IMAGENET_TEMPLATES)


_DRM_IMAGENET = ['a good photo of the {c}.']

#: Template lists by dataset key (the ones the DRM evaluation uses), plus
#: the OpenAI ensembles used by WiSE-FT / FLYP zero-shot baselines.
_TEMPLATES: Dict[str, Union[List[str], Callable[[], List[str]]]] = {
    'iwildcam': ['a photo of {c}.'],
    'fmow': ['satellite photo of a {c}.'],
    'imagenet': _DRM_IMAGENET,
    'imagenet_openai': _openai_imagenet,
    'imagenet_openai_simple': _simple_imagenet,
}
# ImageNet variants share ImageNet's class names and templates.
for _variant in ('imagenet_v2', 'imagenet_r', 'imagenet_a', 'imagenet_sketch',
                 'objectnet'):
    _TEMPLATES[_variant] = _DRM_IMAGENET


def list_templates() -> List[str]:
    """The dataset keys :func:`get_templates` knows."""
    return sorted(_TEMPLATES)


def get_templates(name: str) -> List[str]:
    """The template list of a dataset key, e.g. ``'iwildcam'`` or
    ``'imagenet_openai'`` (the 80 OpenAI templates)."""
    key = str(name).lower()
    if key not in _TEMPLATES:
        raise KeyError(f'Unknown template set {name!r}; known: '
                       f'{list_templates()}. Pass a list of strings with '
                       f'{PLACEHOLDER!r} instead for another dataset.')
    entry = _TEMPLATES[key]
    return list(entry() if callable(entry) else entry)


def check_templates(templates: Sequence[str], where: str = 'templates'
                    ) -> List[str]:
    """Validate a template list: non-empty strings, each containing ``{c}``."""
    if isinstance(templates, str) or not isinstance(templates, Sequence):
        raise TypeError(f'{where}: expected a list of template strings or a '
                        f'dataset key, got {type(templates).__name__}.')
    if len(templates) == 0:
        raise ValueError(f'{where}: the template list is empty.')
    bad = [t for t in templates
           if not isinstance(t, str) or PLACEHOLDER not in t]
    if bad:
        raise ValueError(f'{where}: every template must be a string with the '
                         f'placeholder {PLACEHOLDER!r}; offending: {bad}.')
    return list(templates)


def resolve_templates(templates: Union[str, Sequence[str]]) -> List[str]:
    """A dataset key or an explicit list -> validated template list."""
    if isinstance(templates, str):
        return get_templates(templates)
    return check_templates(templates)


def fill_template(template: str, classname: str) -> str:
    """``template`` with ``{c}`` replaced by ``classname``."""
    return template.replace(PLACEHOLDER, classname)


def build_prompts(templates: Sequence[str],
                  classnames: Sequence[str]) -> List[List[str]]:
    """Prompts per class: each template filled with each class name,
    ``prompts[class][template]``."""
    return [[fill_template(t, c) for t in templates] for c in classnames]
