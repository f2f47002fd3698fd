"""Classify an image with a drm_mm model, as MMPretrain's demo does.

    python demo/image_demo.py IMAGE CONFIG --checkpoint CKPT
    python demo/image_demo.py IMAGE drm_vitb16_iwildcam --checkpoint CKPT
    # override config keys, as MMPretrain's tools do
    python demo/image_demo.py IMAGE CONFIG --checkpoint CKPT \
        --cfg-options model.head.beta=1.0
    # zero-shot, your own classes (descriptions: JSON {class: [text, ...]})
    python demo/image_demo.py IMAGE configs/drm/vitb16_iwildcam.py \
        --classes cat dog --descriptions my_descriptions.json

Prints the β-mixture prediction (class name, score) and each head's top
class (df: default prompts, cd: concept descriptions). With
``--checkpoint`` the model is built offline (the CLIP's pretrained weights
are not fetched: the checkpoint holds every weight) and a checkpoint that
does not fit the model is refused with a one-line error (exit status 1).
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('img', help='image file')
    parser.add_argument('model', help='config file or model name '
                        '(mmpretrain.list_models("*drm*"))')
    parser.add_argument('--checkpoint', help='checkpoint file')
    parser.add_argument('--classes', nargs='+',
                        help='zero-shot: your class names (label order)')
    parser.add_argument('--descriptions',
                        help='zero-shot: JSON {class name: [description]}')
    parser.add_argument('--templates', nargs='+',
                        help='zero-shot: df templates with {c}')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--cfg-options', nargs='+', action=_dict_action(),
        help='override config keys: key=value ... (e.g. model.head.beta=1)')
    return parser.parse_args()


def _dict_action():
    from mmengine.config import DictAction
    return DictAction


def load_model_config(model: str):
    """The Config of a config file, a model name of
    ``mmpretrain.list_models`` or a drm_mm config name."""
    from mmengine.config import Config
    from mmpretrain.apis.model import ModelHub

    from drm_mm.utils import get_config_path
    if osp.isfile(model):
        return Config.fromfile(model)
    if ModelHub.has(model):
        return copy.deepcopy(ModelHub.get(model).config)
    return Config.fromfile(get_config_path(model))


def build_inferencer(args: argparse.Namespace, config):
    """The inferencer of ``config`` with the checkpoint's weights (or, with
    ``--classes``, the zero-shot classifier of the user's classes)."""
    import drm_mm
    from mmpretrain import ImageClassificationInferencer
    if args.classes:
        model = drm_mm.zero_shot_classifier(
            args.classes, descriptions=args.descriptions,
            templates=args.templates, config=config,
            checkpoint=args.checkpoint, device=args.device)
        return ImageClassificationInferencer(model, device=args.device)
    else:
        if args.descriptions or args.templates:
            raise SystemExit('--descriptions / --templates need --classes '
                             '(zero-shot with your own classes).')
        inferencer = ImageClassificationInferencer(
            config, pretrained=args.checkpoint or False, device=args.device)
        if not args.checkpoint:  # the config's pretrained CLIP, zero-shot
            inferencer.model.init_weights()
        return inferencer


def main() -> None:
    args = parse_args()
    config = load_model_config(args.model)
    if args.cfg_options:
        config.merge_from_dict(args.cfg_options)
    from drm_mm.utils import allow_checkpoint_globals
    with allow_checkpoint_globals(
            *config.get('checkpoint_safe_globals', None) or ()):
        inferencer = build_inferencer(args, config)
    sample = inferencer(args.img, return_datasamples=True)[0]
    classes = inferencer.classes
    label = int(sample.pred_label)
    out = dict(pred_class=classes[label], pred_label=label,
               pred_score=round(float(sample.pred_score[label]), 4))
    for head in ('df_score', 'cd_score'):
        if head in sample:
            top = int(sample.get(head).argmax())
            out[head.replace('score', 'class')] = classes[top]
    print(json.dumps(out))


def run() -> None:
    """``main`` with drm_mm's one-line errors (exit status 1);
    ``DRM_MM_DEBUG=1`` shows the traceback."""
    if os.environ.get('DRM_MM_DEBUG', '') not in ('', '0'):
        return main()
    try:
        main()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # noqa: BLE001 - a CLI boundary
        message = str(err).strip() or repr(err)
        print(f'error: {type(err).__name__}: {message}\n'
              '(set DRM_MM_DEBUG=1 for the full traceback)', file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == '__main__':
    run()
