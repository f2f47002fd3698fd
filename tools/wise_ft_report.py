"""Reporting of a WiSE-FT sweep for ``tools/wise_ft.py`` (not a command).

The CSV / JSON tables, the ID-vs-OOD figure (PNG, SVG and PDF) with
baseline curves of earlier sweeps, and the scalars sent to the MMEngine
visualizer backends. The library (``drm_mm``) never imports this module.
"""
import csv
import json
import math
import os
import os.path as osp
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

VECTOR_FORMATS = ('.svg', '.pdf')
ALPHA_LABEL_GID = 'wise-ft-alpha-label'
_SET_NAMES = {
    'test': 'OOD test', 'val': 'OOD val', 'imagenet': 'ImageNet',
    'imagenet_a': 'ImageNet-A', 'imagenet_r': 'ImageNet-R',
    'imagenet_sketch': 'ImageNet-Sketch', 'imagenet_v2': 'ImageNetV2',
    'objectnet': 'ObjectNet'
}
_METRIC_WORDS = {'acc': 'accuracy', 'f1': 'F1', 'top1': 'top-1 accuracy',
                 'top5': 'top-5 accuracy', 'macro': 'macro'}
_PERCENT_LIKE = re.compile(r'acc|f1|top|recall|precision|auc', re.I)

Row = Mapping[str, Any]


# ---------------------------------------------------------------- axes
def _set_name(key: str) -> str:
    return key.split('/', 1)[0] if '/' in key else ''


def _is_id_key(key: str) -> bool:
    name = _set_name(key)
    return name == 'id' or name.startswith('id_')


def pick_axes(keys: Sequence[str], id_metric: Optional[str] = None,
              ood_metric: Optional[str] = None
              ) -> Tuple[str, Optional[str]]:
    """The (ID, OOD) metric names of the plot.

    Defaults: ID = the first key of an ``id_*`` test set (else the first
    key); OOD = the first key of another set with the same metric name as
    ID (e.g. ``id_test/macro_f1`` → ``test/macro_f1``), else the first other
    key. OOD is None when there is a single metric (it is then plotted
    against alpha).
    """
    keys = list(keys)
    if not keys:
        raise ValueError('the evaluation returned no scalar metric; check '
                         'the test_evaluator of the config.')
    for name, value in (('--id-metric', id_metric),
                        ('--ood-metric', ood_metric)):
        if value is not None and value not in keys:
            raise KeyError(f'{name} {value!r} is not a metric of this '
                           f'evaluation; available: {keys}.')
    if id_metric is None:
        id_keys = [k for k in keys if _is_id_key(k)]
        id_metric = id_keys[0] if id_keys else keys[0]
    if ood_metric is None:
        others = [k for k in keys if k != id_metric and not _is_id_key(k)]
        if not others:
            others = [k for k in keys if k != id_metric]
        suffix = id_metric.split('/', 1)[-1]
        same = [k for k in others if k.split('/', 1)[-1] == suffix]
        pool = same or others
        ood_metric = pool[0] if pool else None
    return id_metric, ood_metric


def is_percent_metric(key: str) -> bool:
    """Accuracy-like metrics (accuracy, F1, top-k, ...) are shown in %."""
    return bool(_PERCENT_LIKE.search(key.split('/', 1)[-1]))


def percent_scale(key: str, values: Sequence[float]) -> float:
    """100 when an accuracy-like metric is reported as a fraction (every
    finite value in [0, 1]), else 1 (already in %, or not a percentage)."""
    finite = [v for v in values if isinstance(v, float) and math.isfinite(v)]
    if is_percent_metric(key) and finite and all(
            0.0 <= v <= 1.0 for v in finite):
        return 100.0
    return 1.0


def metric_label(key: str) -> str:
    """An axis label for a metric key, e.g. ``id_test/macro_f1`` →
    ``ID test macro-F1 (%)`` and ``test/acc`` → ``OOD test accuracy (%)``."""
    name, metric = (key.split('/', 1) if '/' in key else ('', key))
    if name in ('accuracy', 'acc'):  # MMPretrain's accuracy/top1, no set
        name, metric = '', key
    if name == 'id' or name.startswith('id_'):
        set_label = ('ID ' + name[3:].replace('_', ' ')).strip()
    else:
        set_label = _SET_NAMES.get(name, name.replace('_', ' '))
    parts = metric.split('/')
    if len(parts) > 1 and parts[0] in ('accuracy', 'acc'):
        parts = parts[1:]  # MMPretrain's accuracy/top1
    words = []
    for part in parts:
        tokens = [_METRIC_WORDS.get(t, t) for t in part.split('_') if t]
        words.append(' '.join(tokens))
    text = ' '.join(words).replace('macro F1', 'macro-F1')
    label = f'{set_label} {text}'.strip()
    return f'{label} (%)' if is_percent_metric(key) else label


# ---------------------------------------------------------------- tables
def write_metrics_csv(rows: Sequence[Row], path: str,
                      first: str = 'alpha') -> List[str]:
    """One CSV row per dict: ``first`` then every other key (first-seen
    order); a missing value is left empty. Returns the header."""
    header = [first]
    for row in rows:
        header += [k for k in row if k not in header]
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w', newline='', encoding='utf-8') as f:
        writer = csv.DictWriter(f, fieldnames=header, restval='')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v
                             for k, v in row.items()})
    os.replace(tmp, path)
    return header


def write_sweep_json(rows: Sequence[Row], path: str,
                     **meta: Any) -> None:
    """The sweep as JSON (``meta`` fields and ``rows``): what
    ``--reference`` reads back as a baseline curve."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(dict(meta, rows=[dict(r) for r in rows]), f, indent=2)
    os.replace(tmp, path)


def _number(value: Any, path: str, key: str) -> float:
    if value in ('', None):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f'--reference {path}: {key}={value!r} is not a '
                         f'number; pass a wise_ft.csv / wise_ft.json written '
                         f'by tools/wise_ft.py.') from None


def read_sweep(spec: str) -> Tuple[str, List[Dict[str, float]]]:
    """A baseline sweep for ``--reference``: ``[LABEL=]PATH`` of a
    ``wise_ft.csv`` or ``wise_ft.json`` of an earlier run. The label
    defaults to the JSON's ``label`` or the file's folder name."""
    label, path = None, spec
    if '=' in spec and not osp.exists(spec):
        label, path = spec.split('=', 1)
    if not osp.isfile(path):
        raise FileNotFoundError(f'--reference {path!r} does not exist; pass '
                                f'the wise_ft.csv or wise_ft.json of an '
                                f'earlier sweep.')
    try:
        if path.endswith('.json'):
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
            raw = data.get('rows') if isinstance(data, dict) else data
            label = label or (data.get('label') if isinstance(data, dict)
                              else None)
        else:
            with open(path, newline='', encoding='utf-8') as f:
                raw = list(csv.DictReader(f))
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as err:
        raise ValueError(f'--reference {path}: not a readable sweep table '
                         f'({err}); pass a wise_ft.csv / wise_ft.json '
                         f'written by tools/wise_ft.py.') from None
    if (not isinstance(raw, list) or not raw
            or not all(isinstance(r, dict) and 'alpha' in r for r in raw)):
        raise ValueError(f'--reference {path}: expected rows with an '
                         f'"alpha" column; pass a wise_ft.csv / wise_ft.json '
                         f'written by tools/wise_ft.py.')
    rows = [{k: _number(v, path, k) for k, v in r.items()} for r in raw]
    label = label or osp.basename(osp.dirname(osp.abspath(path)))
    return label, rows


# ---------------------------------------------------------------- figure
def _curve(rows: Sequence[Row], id_metric: str, ood_metric: Optional[str],
           scale_x: float, scale_y: float
           ) -> Tuple[List[float], List[float], List[float]]:
    rows = sorted(rows, key=lambda r: r['alpha'])
    alphas = [float(r['alpha']) for r in rows]
    if ood_metric:
        xs = [r.get(id_metric, math.nan) * scale_x for r in rows]
        ys = [r.get(ood_metric, math.nan) * scale_y for r in rows]
    else:
        xs = alphas
        ys = [r.get(id_metric, math.nan) * scale_y for r in rows]
    return alphas, xs, ys


def _place_alpha_labels(fig: Any, ax: Any, alphas: Sequence[float],
                        xs: Sequence[float], ys: Sequence[float]) -> None:
    """Label points with their alpha where the text stays inside the axes
    and overlaps no other label and no marker; the end points first, a
    label that fits nowhere is left out."""
    from matplotlib.transforms import Bbox
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken, inside = [], ax.get_window_extent(renderer)
    for a, x, y in zip(alphas, xs, ys):
        if math.isfinite(x) and math.isfinite(y):
            cx, cy = ax.transData.transform((x, y))
            # marker half-size in pixels (the end markers are larger)
            pad = (7.0 if a in (0.0, 1.0) else 3.0) * fig.dpi / 72.0
            taken.append(Bbox.from_extents(cx - pad, cy - pad, cx + pad,
                                           cy + pad))
    offsets = [(6, 6), (6, -12), (-6, 6), (-6, -12), (9, -3), (-9, -3),
               (0, 10), (0, -16)]
    order = sorted(range(len(alphas)),
                   key=lambda i: (alphas[i] not in (0.0, 1.0), i))
    for i in order:
        if not (math.isfinite(xs[i]) and math.isfinite(ys[i])):
            continue
        for dx, dy in offsets:
            text = ax.annotate(
                f'α={alphas[i]:g}', (xs[i], ys[i]), xytext=(dx, dy),
                textcoords='offset points', fontsize=7,
                ha='left' if dx >= 0 else 'right', gid=ALPHA_LABEL_GID)
            box = text.get_window_extent(renderer)
            if (inside.contains(box.x0, box.y0)
                    and inside.contains(box.x1, box.y1)
                    and not any(box.overlaps(other) for other in taken)):
                taken.append(box)
                break
            text.remove()


def make_figure(rows: Sequence[Row], id_metric: str,
                ood_metric: Optional[str], title: str = 'WiSE-FT',
                references: Sequence[Tuple[str, Sequence[Row]]] = ()
                ) -> Any:
    """The WiSE-FT figure: ID vs OOD (or ID vs alpha without an OOD
    metric), percent axes named for metric and split, the zero-shot and
    fine-tuned ends marked, alpha labels that do not overlap, and one
    dashed curve per reference sweep."""
    import matplotlib
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt

    every = list(rows) + [r for _, ref in references for r in ref]
    for label, ref in references:
        missing = [k for k in (id_metric, ood_metric)
                   if k and not any(k in r for r in ref)]
        if missing:
            raise KeyError(f'--reference {label}: no {missing[0]!r} column '
                           f'(the axes of this plot); pass a sweep of the '
                           f'same test sets or choose --id-metric / '
                           f'--ood-metric.')
    scale_x = percent_scale(id_metric, [r.get(id_metric) for r in every])
    scale_y = (percent_scale(ood_metric, [r.get(ood_metric) for r in every])
               if ood_metric else scale_x)
    if not ood_metric:
        scale_x = 1.0
    fig, ax = plt.subplots(figsize=(6.0, 4.8), dpi=120)
    for n, (label, ref) in enumerate(references):
        _, rx, ry = _curve(ref, id_metric, ood_metric, scale_x, scale_y)
        ax.plot(rx, ry, '--', marker='.', color=f'C{(n + 2) % 10}',
                alpha=0.8, zorder=1, label=label)
    alphas, xs, ys = _curve(rows, id_metric, ood_metric, scale_x, scale_y)
    ax.plot(xs, ys, '-o', color='tab:blue', markersize=4, zorder=2,
            label='WiSE-FT (this sweep)')
    ends = {0.0: ('zero-shot', '*', 'tab:green'),
            1.0: ('fine-tuned', 's', 'tab:red')}
    for a, x, y in zip(alphas, xs, ys):
        if a in ends:
            label, marker, color = ends[a]
            ax.scatter([x], [y], marker=marker, s=120, color=color,
                       zorder=3, label=f'{label} (α={a:g})')
    ax.set_xlabel(metric_label(id_metric) if ood_metric else 'α (mixing '
                  'coefficient)')
    ax.set_ylabel(metric_label(ood_metric or id_metric))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _place_alpha_labels(fig, ax, alphas, xs, ys)
    return fig


def save_figure(fig: Any, png_path: str) -> List[str]:
    """Write ``fig`` as PNG at ``png_path`` and as SVG and PDF beside it
    (each through a temporary file); returns the paths."""
    import matplotlib.pyplot as plt
    os.makedirs(osp.dirname(osp.abspath(png_path)), exist_ok=True)
    root = osp.splitext(png_path)[0]
    paths = [png_path] + [root + ext for ext in VECTOR_FORMATS]
    for path in paths:
        ext = osp.splitext(path)[1] or '.png'
        tmp = f'{root}.tmp{ext}'
        fig.savefig(tmp, format=ext[1:])
        os.replace(tmp, path)
    plt.close(fig)
    return paths


def plot_id_ood(rows: Sequence[Row], id_metric: str,
                ood_metric: Optional[str], path: str, title: str = 'WiSE-FT',
                references: Sequence[Tuple[str, Sequence[Row]]] = ()
                ) -> List[str]:
    """:func:`make_figure` saved by :func:`save_figure`."""
    return save_figure(
        make_figure(rows, id_metric, ood_metric, title, references), path)


# ---------------------------------------------------------------- backends
def send_scalars(visualizer: Any, index: int, row: Row,
                 prefix: str = 'wise_ft') -> None:
    """One sweep point to the visualizer backends (LocalVisBackend,
    TensorBoard, W&B...): ``<prefix>/alpha`` and every metric, at step
    ``index`` (the point's position in the sweep)."""
    visualizer.add_scalars({f'{prefix}/{k}': float(v)
                            for k, v in row.items()}, step=index)
