"""Prompts: templates per dataset (df) and concept descriptions (cd).

The description files of the datasets (``iwildcam.json``, ``fmow.json``,
``imagenet.json``) live in this folder.
"""
from .class_prompts import ClassPrompts, default_class_keys
from .descriptions import (DESCRIPTION_PLACEHOLDER, PROMPTS_DIR,
                           DescriptionError, apply_description_template,
                           check_description_template,
                           EmptyDescriptionError, InvalidDescriptionError,
                           MissingDescriptionError,
                           UnknownDescriptionKeyError, load_descriptions,
                           make_class_keys, read_description_file,
                           resolve_description_path)
from .templates import (build_prompts, check_templates, fill_template,
                        get_templates, list_templates, resolve_templates)

#: The two prompt sets of a DRM model: default prompts (templates filled with
#: class names) and concept descriptions. Each gives class prototypes and a
#: head; a loss term names the set whose logits or captions it uses.
PROMPT_SETS = ('df', 'cd')

__all__ = [
    'PROMPT_SETS', 'ClassPrompts', 'default_class_keys',
    'DESCRIPTION_PLACEHOLDER', 'apply_description_template',
    'check_description_template',
    'PROMPTS_DIR', 'DescriptionError', 'EmptyDescriptionError',
    'InvalidDescriptionError', 'MissingDescriptionError',
    'UnknownDescriptionKeyError', 'load_descriptions', 'make_class_keys',
    'read_description_file', 'resolve_description_path', 'build_prompts',
    'check_templates', 'fill_template', 'get_templates', 'list_templates',
    'resolve_templates'
]
