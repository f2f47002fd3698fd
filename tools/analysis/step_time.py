"""Training step time of DRM vs FLYP vs CE on the same CLIP and batch.

Builds one :class:`DRMClassifier` per method from the same seed (same
weights), feeds the same random batch, and times full training steps
(forward, backward, AdamW step) after a warm-up. DRM uses the soft-label
cache (a random p_c table stands in for the hook's), so the figures are the
per-step cost of the objective, not of the one-off soft-label pass.

    python tools/analysis/step_time.py                    # tiny CLIP, CPU
    python tools/analysis/step_time.py --model ViT-B-16 --device cuda \
        --batch-size 256 --steps 20

Prints a table (ms per step, relative to CE) and optionally writes JSON.
"""
import argparse
import json
import os
import statistics
import time
from typing import Dict, List

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import torch  # noqa: E402

METHODS = {
    # name: (loss cfg, head beta, uses descriptions)
    'CE': (dict(erm='ce', wrm_weight=0.0), 1.0, False),
    'FLYP': (dict(erm='contrastive', wrm_weight=0.0), 1.0, False),
    'DRM': (dict(erm='contrastive', wrm_weight=1.0), 0.5, True),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='drm-tiny-vit',
                        help='open_clip architecture')
    parser.add_argument('--pretrained', default=None,
                        help='open_clip tag or weights file (default: '
                        'random weights)')
    parser.add_argument('--dataset', default='iwildcam',
                        help='class names / templates / descriptions key')
    parser.add_argument('--descriptions', default=None,
                        help='description JSON (default <dataset>.json)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=10,
                        help='timed steps per method')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--frozen', nargs='*', default=[],
                        help="frozen towers: image text logit_scale")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads')
    parser.add_argument('--out', help='write the figures as JSON here')
    return parser.parse_args()


def build(args: argparse.Namespace, method: str):
    from drm_mm.models.classifiers import DRMClassifier
    loss, beta, uses_cd = METHODS[method]
    torch.manual_seed(0)
    model = DRMClassifier(
        clip=dict(type='OpenCLIP', model_name=args.model,
                  pretrained=args.pretrained, frozen=tuple(args.frozen)),
        classnames=args.dataset,
        descriptions=(args.descriptions or f'{args.dataset}.json')
        if uses_cd else None,
        head=dict(beta=beta), loss=loss, soft_labels=dict(source='cache'))
    return model.to(args.device)


def make_batch(args: argparse.Namespace, num_classes: int, size: int):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(1)
    inputs = torch.randn(args.batch_size, 3, size, size, generator=g)
    samples = []
    for i in range(args.batch_size):
        sample = DataSample().set_gt_label(
            int(torch.randint(num_classes, (1, ), generator=g)))
        sample.set_metainfo(dict(sample_idx=i))
        samples.append(sample)
    table = torch.softmax(torch.randn(args.batch_size, num_classes,
                                      generator=g) * 3, dim=1)
    return inputs.to(args.device), samples, table


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_method(args: argparse.Namespace, method: str) -> Dict[str, float]:
    model = build(args, method)
    size = model.clip.model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    inputs, samples, table = make_batch(args, model.num_classes, size)
    model.set_soft_labels(table)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-6)
    model.train()
    times: List[float] = []
    for step in range(args.warmup + args.steps):
        sync(args.device)
        start = time.perf_counter()
        losses = model(inputs, samples, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        sync(args.device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    return dict(mean_ms=1e3 * statistics.mean(times),
                median_ms=1e3 * statistics.median(times),
                min_ms=1e3 * min(times), steps=len(times))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    import drm_mm  # noqa: F401  registers components
    results = {m: time_method(args, m) for m in METHODS}
    base = results['CE']['median_ms']
    print(f'model={args.model} dataset={args.dataset} batch='
          f'{args.batch_size} device={args.device} threads={args.threads} '
          f'frozen={args.frozen or "none"}')
    print(f'{"method":<6} {"median ms":>10} {"mean ms":>10} {"min ms":>10}'
          f' {"x CE":>6}')
    for name, r in results.items():
        print(f'{name:<6} {r["median_ms"]:>10.1f} {r["mean_ms"]:>10.1f} '
              f'{r["min_ms"]:>10.1f} {r["median_ms"] / base:>6.2f}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), results=results), f, indent=2)


if __name__ == '__main__':
    main()
