"""Peak memory per rank of the p_c table: float16 memmap vs dense float32.

Each variant runs in a fresh process that installs the table in a real
``CoreSoftLabels`` (``set_table``: the chunked validity check included)
and looks up ``--lookups`` batches of ``--batch`` random rows through its
``forward``, the path of a training step. Reported: peak anonymous
resident memory (RssAnon, as ``benchmark_utils.peak_memory`` measures it)
above the process's own baseline after imports, and the peak file-backed
resident memory (RssFile: page-cache pages that all ranks of a node share).

    python tools/analysis/benchmark_soft_label_storage.py \\
        --rows 1281167 --classes 1000 --out work_dirs/benchmark/storage.json

The float16 ``.npy`` file (rows x classes x 2 bytes) is written to
``--tmp-dir`` with the real writer (``table_storage.write_rows``, random
rows normalised to sum to 1) and removed at the end, also after an error
or Ctrl-C.
"""
import argparse
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
VARIANTS = ('memmap', 'dense')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rows', type=int, default=1281167,
                        help='training samples (ImageNet: 1,281,167)')
    parser.add_argument('--classes', type=int, default=1000)
    parser.add_argument('--batch', type=int, default=64,
                        help='rows per lookup (per-rank batch)')
    parser.add_argument('--lookups', type=int, default=200)
    parser.add_argument('--tmp-dir', default=tempfile.gettempdir())
    parser.add_argument('--out', help='JSON file of the results')
    parser.add_argument('--child', choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument('--path', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def write_table(path: str, rows: int, classes: int) -> None:
    """A valid random float16 p_c file, written in chunks of rows."""
    import torch
    from drm_mm.models.soft_labels.table_storage import (create_table_file,
                                                         write_rows)
    create_table_file(path, rows, classes, None)
    gen = torch.Generator().manual_seed(0)
    step = 16384
    for start in range(0, rows, step):
        part = torch.rand(min(step, rows - start), classes, generator=gen)
        write_rows(path, start, part / part.sum(dim=1, keepdim=True), None)


def child(args) -> dict:
    """One variant in this (fresh) process; returns its measurements."""
    import numpy as np
    import torch
    from mmpretrain.structures import DataSample
    sys.path.insert(0, HERE)
    from benchmark_utils import _proc_status_kib, peak_memory
    from drm_mm.models.soft_labels import CoreSoftLabels
    from drm_mm.models.soft_labels.table_storage import open_table

    torch.set_num_threads(1)
    component = CoreSoftLabels()
    component._cd_prompts = [['x']] * args.classes
    rng = np.random.default_rng(0)
    batches = [[DataSample(metainfo=dict(sample_idx=int(i)))
                for i in rng.integers(0, args.rows, args.batch)]
               for _ in range(args.lookups)]
    inputs = torch.zeros(1)
    file_peak = [0]

    def run():
        table = open_table(args.path, args.classes)
        if args.child == 'dense':  # today's table: float32 in memory
            dense = torch.empty(table.shape, dtype=torch.float32)
            step = 16384
            for start in range(0, len(table), step):
                dense[start:start + step] = torch.from_numpy(np.asarray(
                    table.array[start:start + step], dtype=np.float32))
            table = dense
        component.set_table(table)
        for samples in batches:
            rows = component(inputs, samples)
            assert rows.shape == (args.batch, args.classes)
            assert rows.dtype == torch.float32
        file_peak[0] = _proc_status_kib('RssFile')

    start = time.perf_counter()
    peak = peak_memory(run, 'cpu')
    return dict(variant=args.child, peak_rss_anon_bytes=peak,
                rss_file_at_end_bytes=file_peak[0] * 1024,
                seconds=time.perf_counter() - start)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return {}
    fd, path = tempfile.mkstemp(suffix='.npy', prefix='soft_labels_bench_',
                                dir=args.tmp_dir)
    os.close(fd)
    results = dict(rows=args.rows, classes=args.classes, batch=args.batch,
                   lookups=args.lookups, machine=platform.processor() or
                   platform.machine(), variants={})
    try:
        start = time.perf_counter()
        write_table(path, args.rows, args.classes)
        results['file_bytes'] = os.path.getsize(path)
        results['write_seconds'] = time.perf_counter() - start
        print(f'wrote {results["file_bytes"] / 1e9:.2f} GB float16 table in '
              f'{results["write_seconds"]:.0f} s', flush=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [REPO, os.environ.get('PYTHONPATH', '')]), OMP_NUM_THREADS='1')
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, osp.abspath(__file__), '--child', variant,
                 '--path', path, '--rows', str(args.rows), '--classes',
                 str(args.classes), '--batch', str(args.batch), '--lookups',
                 str(args.lookups)], env=env, check=True,
                stdout=subprocess.PIPE, text=True).stdout
            res = json.loads(out.strip().splitlines()[-1])
            results['variants'][variant] = res
            print(f'{variant:>7}: peak RssAnon +'
                  f'{res["peak_rss_anon_bytes"] / 1e9:.3f} GB, RssFile '
                  f'{res["rss_file_at_end_bytes"] / 1e9:.3f} GB at the end, '
                  f'{res["seconds"]:.0f} s', flush=True)
    finally:
        if osp.exists(path):
            os.remove(path)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    main()
