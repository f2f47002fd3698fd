"""Tests of tools/wise_ft_report.py: axes, tables, the figure (labels, end
points, alpha labels, reference curves, vector files) and the scalars sent
to the visualizer backends."""
import csv
import json
import pathlib
import sys

import pytest

TOOLS = pathlib.Path(__file__).resolve().parents[2] / 'tools'
if str(TOOLS) not in sys.path:
    sys.path.append(str(TOOLS))  # the helper modules beside the tools

from wise_ft_report import (ALPHA_LABEL_GID, make_figure,  # noqa: E402
                            metric_label, pick_axes, plot_id_ood, read_sweep,
                            send_scalars, write_metrics_csv,
                            write_sweep_json)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close('all')


def sweep(alphas, shift=0.0):
    return [dict(alpha=a, **{'id_test/macro_f1': 0.5 + a / 4 + shift,
                             'test/macro_f1': 0.4 + a * (1 - a) + shift})
            for a in alphas]


def test_pick_axes():
    keys = ['id_test/accuracy', 'id_test/macro_f1', 'test/accuracy',
            'test/macro_f1']
    assert pick_axes(keys) == ('id_test/accuracy', 'test/accuracy')
    assert pick_axes(keys, id_metric='id_test/macro_f1') == (
        'id_test/macro_f1', 'test/macro_f1')
    assert pick_axes(['imagenet_r/accuracy', 'id_val/top1']) == (
        'id_val/top1', 'imagenet_r/accuracy')
    assert pick_axes(['a', 'b']) == ('a', 'b')
    assert pick_axes(['accuracy/top1']) == ('accuracy/top1', None)
    with pytest.raises(KeyError, match='available'):
        pick_axes(keys, ood_metric='val/nope')
    with pytest.raises(ValueError, match='no scalar metric'):
        pick_axes([])


@pytest.mark.parametrize('key, label', [
    ('id_test/macro_f1', 'ID test macro-F1 (%)'),
    ('test/acc', 'OOD test accuracy (%)'),
    ('id_val/acc_worst_region', 'ID val accuracy worst region (%)'),
    ('imagenet_r/accuracy/top1', 'ImageNet-R top-1 accuracy (%)'),
    ('val/loss', 'OOD val loss'),
])
def test_metric_label(key, label):
    assert metric_label(key) == label


def test_csv_and_json_tables(tmp_path):
    rows = sweep((0.0, 0.5, 1.0))
    rows[1]['extra'] = 3.0
    path = tmp_path / 'w.csv'
    header = write_metrics_csv(rows, str(path))
    assert header == ['alpha', 'id_test/macro_f1', 'test/macro_f1', 'extra']
    with open(path) as f:
        table = list(csv.DictReader(f))
    assert [float(r['alpha']) for r in table] == [0.0, 0.5, 1.0]
    assert float(table[2]['id_test/macro_f1']) == 0.75
    assert table[0]['extra'] == ''
    label, back = read_sweep(str(path))
    assert label == tmp_path.name
    assert back[1] == rows[1] and back[0]['extra'] != back[0]['extra']  # nan
    write_sweep_json(rows, str(tmp_path / 'w.json'), label='FLYP run')
    assert read_sweep(str(tmp_path / 'w.json')) == ('FLYP run', rows)
    assert read_sweep(f'old={tmp_path / "w.json"}')[0] == 'old'


def test_read_sweep_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--reference '.*nope.csv'"):
        read_sweep(str(tmp_path / 'nope.csv'))
    bad = tmp_path / 'bad.json'
    bad.write_text('{"rows": [{"x": 1}]}')
    with pytest.raises(ValueError, match='"alpha" column'):
        read_sweep(str(bad))
    bad.write_text('{"rows": [{"alpha": "high"}]}')
    with pytest.raises(ValueError, match="alpha='high' is not a number"):
        read_sweep(str(bad))


def _texts(fig):
    return [t for t in fig.axes[0].texts if t.get_gid() == ALPHA_LABEL_GID]


def test_figure_axes_ends_labels_and_references():
    alphas = [round(0.02 * i, 2) for i in range(51)]  # dense: labels collide
    references = [('FLYP', sweep((0.0, 0.5, 1.0), shift=-0.1))]
    fig = make_figure(sweep(alphas), 'id_test/macro_f1', 'test/macro_f1',
                      'WiSE-FT: vitb16_iwildcam (ViT-B-16)', references)
    ax = fig.axes[0]
    assert ax.get_title() == 'WiSE-FT: vitb16_iwildcam (ViT-B-16)'
    assert ax.get_xlabel() == 'ID test macro-F1 (%)'
    assert ax.get_ylabel() == 'OOD test macro-F1 (%)'
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ['FLYP', 'WiSE-FT (this sweep)', 'zero-shot (α=0)',
                      'fine-tuned (α=1)']
    ref_line = next(line for line in ax.lines if line.get_label() == 'FLYP')
    assert list(ref_line.get_xdata()) == pytest.approx([40.0, 52.5, 65.0])
    assert list(ref_line.get_ydata()) == pytest.approx([30.0, 55.0, 30.0])
    ours = next(line for line in ax.lines
                if line.get_label() == 'WiSE-FT (this sweep)')
    assert ours.get_xdata()[-1] == pytest.approx(75.0)  # in percent
    # the end points are marked where alpha = 0 and 1 lie
    ends = [c.get_offsets().tolist() for c in ax.collections]
    assert ends == [[[50.0, 40.0]], [[75.0, 40.0]]]
    # alpha labels: the ends always, none overlapping another
    texts = _texts(fig)
    shown = [t.get_text() for t in texts]
    assert 'α=0' in shown and 'α=1' in shown
    assert len(shown) < len(alphas)  # some left out, not stacked
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)


def test_figure_against_alpha_and_missing_reference_column():
    rows = [dict(alpha=a, **{'accuracy/top1': 70.0 + a}) for a in (0, 1)]
    fig = make_figure(rows, 'accuracy/top1', None)
    assert fig.axes[0].get_xlabel() == 'α (mixing coefficient)'
    assert fig.axes[0].get_ylabel() == 'top-1 accuracy (%)'
    assert list(fig.axes[0].lines[0].get_ydata()) == [70.0, 71.0]  # as is
    with pytest.raises(KeyError,
                       match="--reference old: no 'id_test/macro_f1' column"):
        make_figure(sweep((0, 1)), 'id_test/macro_f1', 'test/macro_f1',
                    references=[('old', [dict(alpha=0.0)])])


def test_png_svg_and_pdf_written(tmp_path):
    paths = plot_id_ood(sweep((0.0, 0.5, 1.0)), 'id_test/macro_f1',
                        'test/macro_f1', str(tmp_path / 'wise_ft.png'))
    assert paths == [str(tmp_path / f'wise_ft.{e}')
                     for e in ('png', 'svg', 'pdf')]
    assert (tmp_path / 'wise_ft.png').read_bytes()[:8] == \
        b'\x89PNG\r\n\x1a\n'
    assert b'<svg' in (tmp_path / 'wise_ft.svg').read_bytes()[:2000]
    assert (tmp_path / 'wise_ft.pdf').read_bytes()[:5] == b'%PDF-'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'wise_ft.pdf', 'wise_ft.png', 'wise_ft.svg']


def test_scalars_reach_the_local_vis_backend(tmp_path):
    from mmengine.visualization import Visualizer
    vis = Visualizer(name='wise_ft_report_test', save_dir=str(tmp_path),
                     vis_backends=[dict(type='LocalVisBackend')])
    rows = sweep((0.0, 1.0))
    for i, row in enumerate(rows):
        send_scalars(vis, i, row)
    lines = (tmp_path / 'vis_data' / 'scalars.json').read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {'wise_ft/alpha': 0.0, 'wise_ft/id_test/macro_f1': 0.5,
         'wise_ft/test/macro_f1': 0.4, 'step': 0},
        {'wise_ft/alpha': 1.0, 'wise_ft/id_test/macro_f1': 0.75,
         'wise_ft/test/macro_f1': 0.4, 'step': 1}]
