"""Loading MMEngine checkpoints with weights_only=True and an allowlist."""
import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from drm_mm.utils import UnsafeCheckpointError, load_trusted_checkpoint


def test_mmengine_objects_load(tmp_path):
    hub = MessageHub.get_instance('safe_ckpt_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/lr', np.float64(1e-3))
    ckpt = dict(meta=dict(epoch=1, iter=np.int64(7), seed=np.int32(3)),
                message_hub=hub.state_dict(),
                state_dict={'w': torch.ones(2)})
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    with pytest.raises(Exception):  # torch's default refuses it
        torch.load(path)
    loaded = load_trusted_checkpoint(str(path))
    assert loaded['meta']['iter'] == 7
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 0.5


def test_getattr_restricted_to_history_buffer_stats(tmp_path):

    class Payload:

        def __reduce__(self):  # a step towards reaching module globals
            return (getattr, (HistoryBuffer.__init__, '__globals__'))

    path = tmp_path / 'evil.pth'
    torch.save({'x': Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        load_trusted_checkpoint(str(path))
