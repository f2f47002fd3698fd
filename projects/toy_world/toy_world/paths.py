"""Where the toy study reads and writes: folders of the checkout it lives in.

The project runs from a source checkout (like any OpenMMLab ``projects/``
folder), so its defaults are fixed relative to it: data under ``data/toy``,
results under ``work_dirs/toy_demo``. The ``drm_mm`` library itself never
knows where a checkout is.
"""
import pathlib

#: The checkout: ``projects/toy_world/toy_world/paths.py`` -> three levels up.
CHECKOUT_ROOT = pathlib.Path(__file__).resolve().parents[3]
PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
#: The toy configs (zero-shot / FLYP / CE / DRM).
CONFIG_DIR = PROJECT_ROOT / 'configs'
#: The concept descriptions (cd prompts) of the eight shapes.
PROMPTS_FILE = PROJECT_ROOT / 'prompts' / 'toy.json'
#: open_clip architecture JSONs of the toy CLIP (``drm-toy-rn``).
MODEL_CONFIG_DIR = pathlib.Path(__file__).resolve().parent / 'model_configs'
#: Where the tools put the world and the pretrained CLIP unless told.
DEFAULT_CACHE_DIR = CHECKOUT_ROOT / 'data' / 'toy'
DEFAULT_WORLD_ROOT = DEFAULT_CACHE_DIR / 'world'
DEFAULT_WORK_DIR = CHECKOUT_ROOT / 'work_dirs' / 'toy_demo'
