# Baseline for configs/drm/vitb16_fmow.py, on top of FT
# (ft_vitb16_fmow.py: cross-entropy on the text-initialised df head, both
# towers train, lambda = 0, beta = 1), as the paper regularises standard
# fine-tuning; only the regulariser differs from FT. With DRM instead: set
# loss=dict(erm='contrastive', wrm_weight=...) and descriptions.
# CAR-FT (Mao et al., Context-Aware Robust Fine-Tuning, IJCV 2023): FT plus
# the KL divergence between the context distributions (zero-shot
# probabilities over the 80 OpenAI ImageNet templates as contexts) of the
# frozen pre-trained and of the fine-tuned image encoder.
# The frozen pre-trained CLIP is the soft-label component's one teacher.
_base_ = ['./ft_vitb16_fmow.py']

model = dict(regularizer=dict(type='drm_mm.CARFTLoss', loss_weight=1.0,
                               context_templates='imagenet_openai'))
