# The toy world (projects/toy_world, 32 px, 8 shape classes) in the WILDS
# iWildCam v2.0 layout: the real WILDSIWildCam dataset class with the class
# names of its categories.csv, and the WILDS iWildCam metrics. Splits as in WILDS:
# train / id_val / id_test at the training locations (background predicts
# the class), val / test at unseen locations (background says nothing or
# the opposite). Generate it with
#   python projects/toy_world/tools/generate_world.py   # -> data/toy/world
dataset_type = 'drm_mm.WILDSIWildCam'
data_root = 'data/toy/world'
image_size = 32

# CLIP's normalisation comes with the model (configs/_base_/models/drm_clip.py).
# The images are written at the model's resolution: no resizing, and no
# augmentation (shapes already vary in colour, size, position, rotation).
train_pipeline = [
    dict(type='drm_mm.LoadImageDraft'),
    # sample_idx: exact soft-label lookup; location: per-camera metrics
    dict(type='PackInputs', meta_keys=('sample_idx', 'img_path', 'location')),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 class_names='categories', pipeline=train_pipeline))


def _split(split):  # noqa: E306 (configs are Python)
    return dict(dataset=dict(type=dataset_type, data_root=data_root,
                             split=split, class_names='categories',
                             pipeline=test_pipeline),
                sampler=dict(type='DefaultSampler', shuffle=False))


val_dataloader = dict(batch_size=250, num_workers=0,
                      id_val=_split('id_val'), val=_split('val'))
val_evaluator = dict(type='drm_mm.IWildCamMetric')
val_cfg = dict(type='drm_mm.MultiDatasetValLoop')

# `dataset`: defaults of every set (read by MMPretrain's get_model and
# inferencers, and by the soft-label hook).
test_dataloader = dict(batch_size=250, num_workers=0,
                       dataset=dict(type=dataset_type,
                                    class_names='categories',
                                    pipeline=test_pipeline),
                       id_test=_split('id_test'), test=_split('test'))
test_evaluator = dict(type='drm_mm.IWildCamMetric')
test_cfg = dict(type='drm_mm.MultiDatasetTestLoop')
