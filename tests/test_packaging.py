"""The wheel carries configs, model index, prompts and class files
(``drm_mm/.mim`` copies); installed non-editable into a scratch venv that
reuses the project venv's packages, ``get_config_path`` and
``mmpretrain.list_models`` find them. An editable install links them."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
IGNORE = shutil.ignore_patterns('.git', '.venv', 'work_dirs', 'data',
                                '__pycache__', 'build', 'dist', '*.egg-info',
                                '.mim', '.pytest_cache')


def _source_copy(tmp_path):
    """A copy of the checkout: building writes drm_mm/.mim into it."""
    src = tmp_path / 'src'
    shutil.copytree(ROOT, src, ignore=IGNORE, symlinks=True)
    return src


def _pip(*args, cwd):
    proc = subprocess.run([sys.executable, '-m', 'pip', *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _scratch_venv(path):
    """A venv whose site-packages also sees the project venv's packages."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)],
                   check=True, timeout=120)
    python = path / 'bin' / 'python'
    site = subprocess.run(
        [str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()'
         '["purelib"])'], capture_output=True, text=True,
        check=True).stdout.strip()
    with open(osp.join(site, 'project_venv.pth'), 'w') as f:
        f.write(sysconfig.get_paths()['purelib'] + '\n')
    return str(python), site


CHECK = textwrap.dedent('''
    import os.path as osp
    import drm_mm, mmpretrain
    from mmengine.config import Config
    from drm_mm.utils import get_config_path
    path = get_config_path('drm/vitb16_iwildcam.py')
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'drm_mm.DRMClassifier', cfg.model.type
    assert osp.isfile(osp.join(osp.dirname(drm_mm.__file__), 'prompts',
                               'iwildcam.json'))
    assert 'drm_vitb16_iwildcam' in mmpretrain.list_models('drm*')
    print(drm_mm.__file__)
    print(path)
''')


def _check(python, cwd):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run([python, '-c', CHECK], cwd=cwd, env=dict(
        env, HF_HUB_OFFLINE='1'), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()[-2:]


@pytest.mark.slow
def test_wheel_contents_and_install(tmp_path, fake_iwildcam_root):
    src = _source_copy(tmp_path)
    # a copy left in the checkout by an older build would shadow configs/
    stale = src / 'drm_mm' / '.mim' / 'configs'
    shutil.copytree(src / 'configs', stale)
    dist = tmp_path / 'dist'
    _pip('wheel', '--no-deps', '--no-build-isolation', '-w', str(dist),
         str(src), cwd=str(tmp_path))
    assert not stale.exists()
    assert not any((src / 'drm_mm' / '.mim').iterdir())
    (wheel, ) = dist.glob('drm_mm-*.whl')
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        meta = next(archive.read(n).decode() for n in names
                    if n.endswith('.dist-info/METADATA'))
        entry_points = next(archive.read(n).decode() for n in names
                            if n.endswith('.dist-info/entry_points.txt'))
    assert 'drm-mm-image-demo = drm_mm.commands:image_demo' in entry_points
    assert ('drm-mm-make-fake-wilds = drm_mm.commands:make_fake_wilds'
            in entry_points)
    for name in ('drm_mm/.mim/tools/train.py', 'drm_mm/.mim/tools/test.py',
                 'drm_mm/.mim/tools/tool_utils.py',
                 'drm_mm/.mim/tools/dist_train.sh',
                 'drm_mm/.mim/tools/dataset_tools/make_fake_wilds.py',
                 'drm_mm/.mim/tools/dataset_tools/wilds_layout.py',
                 'drm_mm/.mim/demo/image_demo.py',
                 'drm_mm/.mim/configs/drm/vitb16_image_folder.py',
                 'drm_mm/.mim/configs/drm/vitbigg14_imagenet.py',
                 'drm_mm/commands.py'):
        assert name in names, name
    assert not any('__pycache__' in n for n in names)
    for name in ('drm_mm/.mim/model-index.yml',
                 'drm_mm/.mim/configs/drm/vitb16_iwildcam.py',
                 'drm_mm/.mim/configs/drm/metafile.yml',
                 'drm_mm/.mim/configs/_base_/default_runtime.py',
                 'drm_mm/.mim/configs/smoke/drm_tiny_fake_iwildcam.py',
                 'drm_mm/prompts/iwildcam.json',
                 'drm_mm/datasets/class_names/iwildcam_categories.csv',
                 'drm_mm/models/clip/model_configs/drm-tiny-vit.json'):
        assert name in names, name
    assert 'Requires-Dist: torch>=2.6' in meta
    assert 'Requires-Dist: setuptools<81' in meta
    mmcv = [ln for ln in meta.splitlines() if 'Requires-Dist: mmcv' in ln]
    assert mmcv == [  # only the extra, whatever is installed at build time
        'Requires-Dist: mmcv-lite<2.3.0,>=2.0.0; extra == "mmcv-lite"']
    for extra in ('mmcv-lite', 'tensorboard', 'wandb'):
        assert f'Provides-Extra: {extra}' in meta
    python, site = _scratch_venv(tmp_path / 'venv')
    _pip('--python', python, 'install', '--no-deps', '--no-index',
         str(wheel), cwd=str(tmp_path))
    package, config = _check(python, str(tmp_path))
    assert package == osp.join(site, 'drm_mm', '__init__.py')
    # the fake-data writer runs from the installed wheel
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run(
        [python, '-c', 'import sys; from drm_mm.commands import '
         'make_fake_wilds; make_fake_wilds()',
         str(tmp_path / 'fake'), '--datasets', 'fmow'],
        cwd=str(tmp_path), env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / 'fake' / 'fmow_v1.1' / 'rgb_metadata.csv').is_file()
    # mim train / mim test run the tools shipped in drm_mm/.mim/tools
    import importlib.util
    if importlib.util.find_spec('mim') is None:
        pytest.skip('openmim is not installed: mim train/test drm_mm not '
                    'checked (pip install openmim)')
    work = tmp_path / 'mim_work'
    mim = [python, '-m', 'mim']
    for args in (
            ['train', 'drm_mm', 'drm_tiny_fake_iwildcam.py', '--work-dir',
             str(work), '--cfg-options', f'data_root={fake_iwildcam_root}',
             'train_cfg.max_epochs=1'],
            ['test', 'drm_mm', 'drm_tiny_fake_iwildcam.py', '--checkpoint',
             str(work / 'epoch_1.pth'), '--work-dir', str(work),
             '--cfg-options', f'data_root={fake_iwildcam_root}']):
        proc = subprocess.run(mim + args, cwd=str(tmp_path), env=dict(
            env, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1'),
            capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (proc.stdout[-3000:] +
                                      proc.stderr[-3000:])
        assert osp.join(site, 'drm_mm', '.mim', 'tools') in proc.stdout
    assert (work / 'epoch_1.pth').is_file()
    assert 'accuracy/top1' in proc.stdout + proc.stderr
    assert config == osp.join(site, 'drm_mm', '.mim', 'configs', 'drm',
                              'vitb16_iwildcam.py')


@pytest.mark.slow
def test_editable_install_links_configs(tmp_path):
    src = _source_copy(tmp_path)
    python, _ = _scratch_venv(tmp_path / 'venv')
    _pip('--python', python, 'install', '--no-deps', '--no-build-isolation',
         '-e', str(src), cwd=str(tmp_path))
    mim = src / 'drm_mm' / '.mim'
    assert os.readlink(mim / 'configs') == osp.join('..', '..', 'configs')
    assert os.readlink(mim / 'model-index.yml') == osp.join(
        '..', '..', 'model-index.yml')
    assert os.readlink(mim / 'tools') == osp.join('..', '..', 'tools')
    assert os.readlink(mim / 'demo') == osp.join('..', '..', 'demo')
    _, config = _check(python, str(tmp_path))
    assert config == str(mim / 'configs' / 'drm' / 'vitb16_iwildcam.py')


def test_every_config_is_in_the_model_index():
    import glob

    import yaml
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    listed = {}
    for metafile in index['Import']:
        with open(osp.join(ROOT, metafile)) as f:
            for model in yaml.safe_load(f)['Models']:
                listed[model['Config']] = model['Name']
    configs = {osp.relpath(p, ROOT) for p in glob.glob(
        osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
        if '_base_' not in p}
    assert sorted(configs - set(listed)) == []
    assert sorted(set(listed) - configs) == []
    assert listed['configs/drm/vitbigg14_imagenet.py'] == \
        'drm_vitbigg14_imagenet'


def test_commands_find_the_shipped_scripts():
    from drm_mm.commands import script_path
    assert script_path('demo/image_demo.py') == osp.join(
        ROOT, 'demo', 'image_demo.py')
    assert script_path('tools/dataset_tools/make_fake_wilds.py') == \
        osp.join(ROOT, 'tools', 'dataset_tools', 'make_fake_wilds.py')
    with pytest.raises(FileNotFoundError, match='reinstall drm_mm'):
        script_path('tools/nope.py')
