"""The toy world: a synthetic iWildCam-layout dataset whose core feature is a
foreground shape and whose non-core feature is the location's background,
plus a tiny CLIP pretrained on a caption corpus from the same world.

It shows the DRM effect on a CPU in minutes (``projects/toy_world/tools``).
Importing this package (``custom_imports`` of the toy configs) registers the
toy CLIP architecture ``drm-toy-rn`` with open_clip.
"""
from .caption_corpus import (CORE_PHRASES, CaptionCorpus, CorpusSettings,
                             batch_indices, build_corpus)
from .paths import DEFAULT_CACHE_DIR, DEFAULT_WORLD_ROOT, PROMPTS_FILE
from .pretrain_clip import (DF_TEMPLATE, PretrainResult, PretrainSettings,
                            build_toy_clip, format_report, pretrain_toy_clip,
                            prompt_prototypes, register_toy_configs,
                            toy_descriptions, zero_shot_report)
from .shapes import (BACKGROUND_KINDS, PALETTE, SHAPE_NAMES, BackgroundStyle,
                     ForegroundSettings)
from .toy_world import (SPLITS, Location, WorldSettings, ensure_world,
                        generate_world, iter_samples, make_locations,
                        plan_world, read_world_info)

register_toy_configs()

__all__ = [
    'CORE_PHRASES', 'CaptionCorpus', 'CorpusSettings', 'batch_indices',
    'build_corpus', 'DEFAULT_CACHE_DIR', 'DF_TEMPLATE', 'PROMPTS_FILE',
    'PretrainResult', 'PretrainSettings', 'build_toy_clip',
    'prompt_prototypes', 'format_report', 'toy_descriptions',
    'pretrain_toy_clip', 'register_toy_configs', 'zero_shot_report',
    'BACKGROUND_KINDS', 'PALETTE', 'SHAPE_NAMES', 'BackgroundStyle',
    'ForegroundSettings', 'DEFAULT_WORLD_ROOT', 'SPLITS', 'Location',
    'WorldSettings', 'ensure_world', 'generate_world', 'iter_samples',
    'make_locations', 'plan_world', 'read_world_info'
]
