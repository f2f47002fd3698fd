# LP-FT baseline: continue from the LP checkpoint (ce_tiny_lp_fake_iwildcam)
# with the towers unfrozen, cross-entropy on the (linear) df head.
#   python tools/train.py configs/smoke/ce_tiny_lp_fake_iwildcam.py
#   python tools/train.py configs/smoke/ce_tiny_lpft_fake_iwildcam.py
_base_ = ['./ce_tiny_lp_fake_iwildcam.py']

# the linear head makes the text tower unused: keep it frozen
model = dict(clip=dict(frozen=('text', )))
load_from = 'work_dirs/ce_tiny_lp_fake_iwildcam/epoch_2.pth'
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.1))
work_dir = 'work_dirs/ce_tiny_lpft_fake_iwildcam'
