# Baseline for configs/drm/vitb16_iwildcam.py, on top of FT
# (ft_vitb16_iwildcam.py: cross-entropy on the text-initialised df head, both
# towers train, lambda = 0, beta = 1), as the paper regularises standard
# fine-tuning; only the regulariser differs from FT. With DRM instead: set
# loss=dict(erm='contrastive', wrm_weight=...) and descriptions.
# Lipsum-FT (Nam, Heo, Lee, ICLR 2024): FT plus the energy gap
# 1/(2M) ||v_theta(x) - v_theta0(x)||^2 on M = 80 random texts of 8 tokens
# drawn per step (from the run seed and the iteration).
# The frozen pre-trained CLIP is the soft-label component's one teacher.
_base_ = ['./ft_vitb16_iwildcam.py']

model = dict(regularizer=dict(type='drm_mm.LipsumLoss', loss_weight=1.0,
                               num_texts=80, text_length=8))
