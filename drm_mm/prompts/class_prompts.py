"""``ClassPrompts``: the prompt sets of a classifier from its config values
(class names or a dataset key, templates, descriptions)."""
from typing import Dict, List, Optional, Sequence, Union

from .descriptions import (apply_description_template,
                           check_description_template, load_descriptions,
                           make_class_keys)
from .templates import build_prompts, resolve_templates

Names = Union[str, Sequence[str]]


def resolve_classnames(classnames: Names) -> List[str]:
    """Class names in label order from a dataset key or a list."""
    if isinstance(classnames, str):
        from drm_mm.datasets.classnames import get_classnames
        return list(get_classnames(classnames))
    names = list(classnames)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError('DRMClassifier.classnames: give a dataset key (e.g. '
                         "'iwildcam') or a non-empty list of class names.")
    return names


def default_class_keys(classnames: Names,
                       names: List[str]) -> Optional[List[str]]:
    """For a dataset key, its description keys (ImageNet and its subsets:
    ``"<name> [<wnid>]"`` for the names the 1000 classes use twice); for a
    list of names, None when they are unique (else an error asking for
    class_keys)."""
    if isinstance(classnames, str):
        from drm_mm.datasets.classnames import get_class_keys
        return get_class_keys(classnames)
    if len(set(names)) == len(names):
        return None
    return make_class_keys(names)


class ClassPrompts:
    """The df, caption and cd prompts of every class, in label order.

    Args:
        classnames (str | list[str]): class names in label order, or a
            dataset key resolved by
            ``drm_mm.datasets.classnames.get_classnames``.
        templates (str | list[str], optional): df templates (with ``{c}``)
            or a dataset key. Defaults to the key of ``classnames``.
        descriptions (str | dict, optional): concept descriptions: a JSON
            path (relative paths are also looked up in ``drm_mm/prompts/``)
            or a dict keyed by class name. Defaults to None (no cd prompts).
        class_keys (list[str], optional): description keys of the classes
            when names repeat. Defaults to the names (dataset keys: their
            own keys).
        description_template (str): how a cd prompt is made from a
            description ``{d}`` and the class name ``{c}``. Defaults to
            ``'{d}'``.
        allow_extra_description_keys (bool): warn (not fail) on description
            keys that are no class. Defaults to False.
        caption_templates (str | list[str], optional): templates of the
            contrastive ERM's training captions. Defaults to ``templates``.
    """

    def __init__(self,
                 classnames: Names,
                 templates: Optional[Names] = None,
                 descriptions: Optional[Union[str, dict]] = None,
                 class_keys: Optional[Sequence[str]] = None,
                 description_template: str = '{d}',
                 allow_extra_description_keys: bool = False,
                 caption_templates: Optional[Names] = None) -> None:
        self.classnames = resolve_classnames(classnames)
        if templates is None:
            if not isinstance(classnames, str):
                raise ValueError('DRMClassifier.templates: give a template '
                                 'list or a dataset key when classnames is '
                                 'a list.')
            templates = classnames
        self.templates = resolve_templates(templates)
        self.caption_templates = (self.templates if caption_templates is None
                                  else resolve_templates(caption_templates))
        self.description_template = check_description_template(
            description_template)
        self.descriptions: Optional[List[List[str]]] = None
        if descriptions is not None:
            self.descriptions = apply_description_template(
                self._load(descriptions, classnames, class_keys,
                           allow_extra_description_keys),
                self.classnames, self.description_template)

    @property
    def sets(self) -> Dict[str, List[List[str]]]:
        """Per prompt set (``'df'``, ``'caption'`` when its templates
        differ, ``'cd'`` with descriptions), the prompts of each class."""
        sets = dict(df=build_prompts(self.templates, self.classnames))
        if self.caption_templates != self.templates:
            sets['caption'] = build_prompts(self.caption_templates,
                                            self.classnames)
        if self.descriptions is not None:
            sets['cd'] = self.descriptions
        return sets

    def _load(self, descriptions: Union[str, dict], classnames: Names,
              class_keys: Optional[Sequence[str]],
              allow_extra: bool) -> List[List[str]]:
        """Descriptions per class; an ImageNet subset key (``'imagenet_r'``)
        reads the 1000-class file and keeps its classes."""
        if class_keys is None and classnames in ('imagenet_a', 'imagenet_r'):
            from drm_mm.datasets.classnames import (class_subset_indices,
                                                    get_class_keys,
                                                    get_classnames)
            full = load_descriptions(
                descriptions, get_classnames('imagenet'),
                class_keys=get_class_keys('imagenet'),
                allow_extra_keys=allow_extra)
            return [full[i] for i in class_subset_indices(classnames)]
        keys = (list(class_keys) if class_keys is not None else
                default_class_keys(classnames, self.classnames))
        return load_descriptions(descriptions, self.classnames,
                                 class_keys=keys, allow_extra_keys=allow_extra)
