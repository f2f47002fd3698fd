"""Contrastive (FLYP) loss: equals open_clip's ClipLoss, and two gloo ranks
with half the batch each reproduce one process with the whole batch."""
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F

from drm_mm.models.losses.contrastive_loss import (ContrastiveLoss,
                                                   contrastive_loss)
from drm_mm.models.rank_shards import gather_with_grad

REPO = Path(__file__).resolve().parents[3]


def _features(n=6, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(n, d, generator=g), dim=1)
    txt = F.normalize(torch.randn(n, d, generator=g), dim=1)
    return img, txt


def test_equals_open_clip_clip_loss():
    img, txt = _features()
    scale = torch.tensor(37.5)
    ours = ContrastiveLoss()(img, txt, scale)
    ref = open_clip.ClipLoss()(img, txt, scale)
    assert torch.allclose(ours, ref, atol=1e-6)
    assert torch.allclose(contrastive_loss(img, txt, scale), ref, atol=1e-6)


def test_gather_is_identity_without_process_group():
    x = torch.randn(3, 4)
    assert gather_with_grad(x) is x


_WORKER = textwrap.dedent('''
    import sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    import torch.nn.functional as F
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    from drm_mm.models.losses.contrastive_loss import ContrastiveLoss

    N = 8
    SPLITS = [(4, 4), (3, 5)]


    class Towers(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.image = nn.Linear(6, 4)
            self.text = nn.Linear(5, 4)
            self.logit_scale = nn.Parameter(torch.tensor(2.0))

        def forward(self, x, t):
            return (F.normalize(self.image(x), dim=1),
                    F.normalize(self.text(t), dim=1), self.logit_scale.exp())


    def batch():
        g = torch.Generator().manual_seed(1)
        return torch.randn(N, 6, generator=g), torch.randn(N, 5, generator=g)


    def result(model, loss):
        return dict(loss=loss.detach(),
                    grads={n: p.grad.clone()
                           for n, p in model.named_parameters()})


    def worker(rank, port, out):
        torch.set_num_threads(1)
        dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                rank=rank, world_size=2)
        x, t = batch()
        for k, sizes in enumerate(SPLITS):
            lo = sum(sizes[:rank])
            hi = lo + sizes[rank]
            model = DistributedDataParallel(Towers())
            loss = ContrastiveLoss()(*model(x[lo:hi], t[lo:hi]))
            loss.backward()
            torch.save(result(model.module, loss), f'{out}/split{k}_rank{rank}.pt')
        dist.destroy_process_group()


    if __name__ == '__main__':
        port, out = int(sys.argv[1]), sys.argv[2]
        torch.set_num_threads(1)
        model = Towers()
        x, t = batch()
        loss = ContrastiveLoss()(*model(x, t))
        loss.backward()
        torch.save(result(model, loss), f'{out}/single.pt')
        # fork: the ranks inherit the imports (one thread, so fork is safe)
        mp.start_processes(worker, args=(port, out), nprocs=2, join=True,
                           start_method='fork')
''')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # two processes: seconds of imports
def test_two_gloo_ranks_match_one_process_on_the_global_batch(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(_WORKER)
    env = dict(os.environ, PYTHONPATH=f'{REPO}{os.pathsep}'
               f'{os.environ.get("PYTHONPATH", "")}', OMP_NUM_THREADS='1')
    proc = subprocess.run(
        [sys.executable, str(script), str(_free_port()), str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = torch.load(tmp_path / 'single.pt', weights_only=True)
    for k in range(2):  # equal and unequal halves
        for rank in range(2):
            ranked = torch.load(tmp_path / f'split{k}_rank{rank}.pt',
                                weights_only=True)
            assert torch.allclose(ranked['loss'], single['loss'], atol=1e-5)
            for name, grad in single['grads'].items():
                assert torch.allclose(ranked['grads'][name], grad,
                                      atol=1e-5), (k, rank, name)
