"""Classify an image with a drm_mm model, as MMPretrain's demo does.

    python demo/image_demo.py IMAGE CONFIG --checkpoint CKPT
    python demo/image_demo.py IMAGE drm_vitb16_iwildcam --checkpoint CKPT
    # zero-shot, your own classes (descriptions: JSON {class: [text, ...]})
    python demo/image_demo.py IMAGE configs/drm/vitb16_iwildcam.py \
        --classes cat dog --descriptions my_descriptions.json

Prints the β-mixture prediction (class name, score) and each head's top
class (df: default prompts, cd: concept descriptions).
"""
import argparse
import json


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
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import drm_mm
    from mmpretrain import ImageClassificationInferencer
    if args.classes:
        model = drm_mm.zero_shot_classifier(
            args.classes, descriptions=args.descriptions,
            templates=args.templates, config=args.model,
            checkpoint=args.checkpoint, device=args.device)
        inferencer = ImageClassificationInferencer(model, device=args.device)
    else:
        if args.descriptions or args.templates:
            raise SystemExit('--descriptions / --templates need --classes '
                             '(zero-shot with your own classes).')
        inferencer = ImageClassificationInferencer(
            args.model, pretrained=args.checkpoint, device=args.device)
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


if __name__ == '__main__':
    main()
