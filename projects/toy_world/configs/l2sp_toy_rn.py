# L2-SP in the toy world (Li et al., ICML 2018).
# Same data, schedule and model as ce_toy_rn.py (CE fine-tuning of the
# text-initialised df head, lambda = 0, beta = 1); only the regulariser
# towards the frozen pre-trained toy CLIP differs (configs/baselines/).
_base_ = ['./ce_toy_rn.py']

model = dict(regularizer=dict(type='drm_mm.L2SPLoss', alpha=0.1, beta=0.01))
optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
