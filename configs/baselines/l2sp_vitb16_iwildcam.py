# Baseline for configs/drm/vitb16_iwildcam.py, on top of FT
# (ft_vitb16_iwildcam.py: cross-entropy on the text-initialised df head, both
# towers train, lambda = 0, beta = 1), as the paper regularises standard
# fine-tuning; only the regulariser differs from FT. With DRM instead: set
# loss=dict(erm='contrastive', wrm_weight=...) and descriptions.
# L2-SP (Li, Grandvalet, Davoine, ICML 2018): FT plus an L2 pull towards the
# pre-trained weights (alpha) and weight decay on new parameters (beta; the
# zero-shot-initialised df head adds none). L2-SP replaces the optimizer's
# weight decay, so it is 0 here (a non-zero one is refused).
# The frozen pre-trained CLIP is the soft-label component's one teacher.
_base_ = ['./ft_vitb16_iwildcam.py']

model = dict(regularizer=dict(type='drm_mm.L2SPLoss', alpha=0.1, beta=0.01))
optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
