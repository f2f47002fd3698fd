"""The README does what it says: it stays short, every command in it is run
by a named test (the get-started block and the two wrapper scripts here,
the rest where the tool is tested), the visualizer one-liners parse into a
list of dicts, the inheriting snippet loads, ``drm_mm::`` fails as
explained, the MMPretrain tools path exists, and the Inference examples run
(tiny model, tiny checkpoint)."""
import argparse
import os.path as osp
import re
import os
import shlex
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from PIL import Image

import drm_mm  # noqa: F401
from drm_mm.datasets.classnames import get_classnames
from drm_mm.utils import get_config_path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def readme():
    with open(osp.join(ROOT, 'README.md'), encoding='utf-8') as f:
        return f.read()


def section(title):
    text = readme()
    start = text.index(f'\n{title}\n')
    following = re.search(r'\n#{2,3} ', text[start + len(title) + 2:])
    return text[start:start + len(title) + 2 + following.start()]


def blocks(text, lang):
    return re.findall(rf'```{lang}\n(.*?)```', text, flags=re.S)


def test_visualizer_one_liners_parse_into_list_of_dicts():
    from mmpretrain.registry import VISBACKENDS
    lines = blocks(section('### Logging backends'), 'bash')[0].splitlines()
    assert len(lines) == 2
    parser = argparse.ArgumentParser()
    parser.add_argument('script')
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    got = []
    for line in lines:
        args = parser.parse_args(shlex.split(line)[1:])
        cfg = Config.fromfile(get_config_path('_base_/default_runtime.py'))
        cfg.merge_from_dict(args.cfg_options)
        backends = cfg.visualizer.vis_backends
        assert isinstance(backends, list)
        assert all(isinstance(b, dict) for b in backends)
        assert VISBACKENDS.get(backends[0]['type']) is not None
        got.append(backends)
    assert got == [[dict(type='TensorboardVisBackend')],
                   [dict(type='WandbVisBackend',
                         init_kwargs=dict(project='drm_mm'))]]


def test_inheriting_snippet_and_drm_mm_scheme(tmp_path):
    text = section('### From another OpenMMLab project')
    snippet = blocks(text, 'python')[0].replace(
        '/path/to/drm_mm/configs/drm/vitb16_iwildcam.py',
        get_config_path('drm/vitb16_iwildcam.py'))
    path = tmp_path / 'my_drm.py'
    path.write_text(snippet)
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.model.loss.wrm_weight == 0.5
    assert cfg.runner_type == 'drm_mm.DRMRunner'
    # the printed path of the comment is the one used above
    command = re.search(r'# (python -c ".*")', snippet).group(1)
    out = subprocess.run(shlex.split(command)[0:1] and
                         [sys.executable] + shlex.split(command)[1:],
                         capture_output=True, text=True, check=True,
                         env={'PYTHONPATH': ROOT, 'HF_HUB_OFFLINE': '1'})
    assert out.stdout.strip().splitlines()[-1] == get_config_path(
        'drm/vitb16_iwildcam.py')
    (tmp_path / 'scheme.py').write_text(
        "_base_ = 'drm_mm::drm/vitb16_iwildcam.py'\n")
    with pytest.raises(AssertionError,
                       match='mmengine does not support to load drm_mm '
                       'config'):
        Config.fromfile(str(tmp_path / 'scheme.py'))
    tools = re.search(r'MMPRETRAIN_TOOLS=\$\(python -c "(.*?)"\)', text,
                      flags=re.S).group(1).replace('\n', ' ')
    out = subprocess.run([sys.executable, '-c', tools], capture_output=True,
                         text=True, check=True)
    for tool in ('train.py', 'test.py'):
        assert osp.isfile(osp.join(out.stdout.strip(), tool))


def test_inference_examples_run(tmp_path):
    from mmpretrain import get_model
    image = tmp_path / 'demo.jpg'
    Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (40, 52, 3), dtype=np.uint8)).save(image)
    torch.manual_seed(0)
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=get_model(
        'drm_tiny_fake_iwildcam').state_dict()), ckpt)
    first, zero_shot = blocks(section('### Inference'), 'python')

    def run(code, scope):
        code = (code.replace("'drm_vitb16_iwildcam'",
                             "'drm_tiny_fake_iwildcam'")
                .replace("'CKPT'", repr(str(ckpt)))
                .replace("'demo.jpg'", repr(str(image)))
                .replace('zero_shot_classifier(\n', 'zero_shot_classifier(\n'
                         "    config='smoke/drm_tiny_fake_iwildcam.py',\n"))
        exec(compile(code, 'README.md', 'exec'), scope)  # noqa: S102
        return scope

    scope = run(first, {})
    assert 'drm_vitb16_iwildcam' in scope['names']
    assert scope['model'].classnames == get_classnames('iwildcam')
    assert scope['result']['pred_class'] in scope['model'].classnames
    assert set(scope['sample'].keys()) >= {'df_score', 'cd_score'}
    scope = run(zero_shot, scope)
    assert scope['model'].classnames == ['red fox', 'grey wolf']
    assert scope['model'].head.beta == 0.5


def readme_commands():
    """Every shell command of the README, one string each: the lines of its
    ``bash`` blocks (continuation lines joined, trailing comments dropped)
    and the inline code in its prose that starts with a program."""
    commands = []
    for block in blocks(readme(), 'bash'):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'\s+#.*$', '', line).strip()
            if line and not line.startswith('#'):
                commands.append(' '.join(line.split()))
    prose = re.sub(r'```.*?```', '', readme(), flags=re.S)
    commands += [' '.join(span.split())
                 for span in re.findall(r'`([^`]+)`', prose)
                 if re.match(r'(python|bash|pip|torchrun) ', span)]
    return commands


# README command (a regular expression matched at its start) -> the tests
# that run it. A new README command needs a line here and a test that runs
# it; every --flag of the command must appear in one of those test files.
COMMAND_TESTS = {
    r'pip install -e ': [
        'tests/test_packaging.py::test_editable_install_links_configs'],
    r'pip install "\.\[': [
        'tests/test_packaging.py::test_wheel_contents_and_install'],
    r'bash tools/run_demo\.sh$': [
        'tests/test_readme.py::test_wrapper_scripts_run_the_study_and_pytest',
        'projects/toy_world/tests/test_demo.py::'
        'test_study_writes_table_plot_and_results'],
    r'bash tools/run_tests\.sh$': [
        'tests/test_readme.py::test_wrapper_scripts_run_the_study_and_pytest'],
    r'python tools/dataset_tools/make_fake_wilds\.py data/fake_wilds$': [
        'tests/test_readme.py::test_get_started_commands_run_as_written',
        'tests/tools/test_make_fake_wilds.py::'
        'test_fake_wilds_open_with_drm_mm_datasets'],
    r'python tools/(train|test)\.py configs/smoke/': [
        'tests/test_readme.py::test_get_started_commands_run_as_written'],
    r'bash tools/dist_train\.sh configs/drm/\S+ 8$': [
        'tests/tools/test_train_test_tools.py::test_dist_train_two_cpu_ranks',
        'tests/configs/test_configs.py::test_config_builds_and_steps'],
    r'python tools/test\.py configs/drm/\S+ work_dirs/': [
        'tests/tools/test_train_test_tools.py::test_train_resume_test',
        'tests/configs/test_configs.py::test_config_builds_and_steps'],
    r'python \$MMPRETRAIN_TOOLS/(train|test)\.py my_drm\.py ': [
        'tests/tools/test_mmpretrain_tools.py::'
        'test_mmpretrain_train_resume_test',
        'tests/test_readme.py::test_inheriting_snippet_and_drm_mm_scheme'],
    r'torchrun --nproc_per_node 2 \$MMPRETRAIN_TOOLS/train\.py ': [
        'tests/tools/test_mmpretrain_tools.py::'
        'test_mmpretrain_train_two_ranks_gloo'],
    r'python tools/train\.py CONFIG --cfg-options visualizer\.': [
        'tests/test_readme.py::'
        'test_visualizer_one_liners_parse_into_list_of_dicts'],
    r'python demo/image_demo\.py demo\.jpg configs/\S+ --checkpoint CKPT$': [
        'tests/apis/test_inference.py::test_image_demo_with_checkpoint'],
    r'python tools/(train|test)\.py my_drm\.py': [
        'tests/tools/test_own_data.py::'
        'test_own_image_folder_trains_resumes_tests_and_serves'],
    r'python tools/analysis/confusion_matrix\.py my_drm\.py ': [
        'tests/tools/test_own_data.py::'
        'test_own_image_folder_trains_resumes_tests_and_serves'],
    r'python demo/image_demo\.py demo\.jpg \S+ --classes ': [
        'tests/apis/test_inference.py::test_image_demo_zero_shot'],
}


def test_readme_is_short_and_keeps_the_ci_command():
    text = readme()
    assert len(text.splitlines()) <= 300
    # CI runs exactly this line; the README must show it as is.
    assert 'bash tools/run_tests.sh' in readme_commands()
    assert '\n## Your own data\n' in text


def test_every_readme_command_is_exercised_by_a_named_test():
    commands = readme_commands()
    assert len(commands) >= 15
    unmapped = [c for c in commands
                if not any(re.match(k, c) for k in COMMAND_TESTS)]
    assert not unmapped, f'add each to COMMAND_TESTS with its test: {unmapped}'
    for command in commands:
        tests = [t for k, ts in COMMAND_TESTS.items()
                 if re.match(k, command) for t in ts]
        sources = []
        for test in tests:
            path, name = test.split('::')
            with open(osp.join(ROOT, path), encoding='utf-8') as f:
                source = f.read()
            assert re.search(rf'^def {name}\(', source, flags=re.M), test
            sources.append(source)
        for flag in re.findall(r'(?<!\S)--[\w-]+', command):
            assert any(flag in s for s in sources), (
                f'{command!r}: no test of {tests} passes {flag}')
    unused = [k for k in COMMAND_TESTS
              if not any(re.match(k, c) for c in commands)]
    assert not unused, f'COMMAND_TESTS keys no README command uses: {unused}'


def _stub_checkout(tmp_path, script):
    """A checkout with only ``tools/<script>``, a stub ``setup_env.sh`` and a
    stub ``.venv/bin/python`` that log how they were called."""
    log = tmp_path / 'calls.log'
    (tmp_path / 'tools').mkdir()
    (tmp_path / '.venv' / 'bin').mkdir(parents=True)
    with open(osp.join(ROOT, 'tools', script), encoding='utf-8') as f:
        (tmp_path / 'tools' / script).write_text(f.read())
    stubs = {
        tmp_path / 'tools' / 'setup_env.sh': f'echo setup_env >> {log}\n',
        tmp_path / '.venv' / 'bin' / 'python':
        f'echo "python HF_HUB_OFFLINE=$HF_HUB_OFFLINE $*" >> {log}\n'
        'exit 3\n',
    }
    for path, body in stubs.items():
        path.write_text('#!/usr/bin/env bash\n' + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return log


@pytest.mark.parametrize('script, args, expected', [
    ('run_demo.sh', ['--seeds', '0'],
     'python HF_HUB_OFFLINE=1 projects/toy_world/tools/run_demo.py --seeds 0'),
    ('run_tests.sh', ['-m', 'not slow'],
     'python HF_HUB_OFFLINE=1 -m pytest tests projects -p no:cacheprovider '
     '-m not slow'),
])
def test_wrapper_scripts_run_the_study_and_pytest(tmp_path, script, args,
                                                  expected):
    log = _stub_checkout(tmp_path, script)
    env = {k: v for k, v in os.environ.items() if k != 'HF_HUB_OFFLINE'}
    proc = subprocess.run(['bash', f'tools/{script}'] + args, cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    # the wrapper sets up .venv first, then runs its one job there and
    # passes the job's exit status on
    assert log.read_text().splitlines() == ['setup_env', expected]
    assert proc.returncode == 3, proc.stdout + proc.stderr
    if script == 'run_tests.sh':  # prints the suite's wall time either way
        assert 'test suite wall time' in proc.stdout


@pytest.mark.slow
def test_get_started_commands_run_as_written(tmp_path):
    """The first block of "Train and test", run line by line as written,
    from a folder that holds the checkout's tools/ and configs/."""
    (block, ) = blocks(section('### Train and test'), 'bash')[:1]
    for name in ('tools', 'configs'):
        os.symlink(osp.join(ROOT, name), tmp_path / name)
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE='1',
               OMP_NUM_THREADS='1')
    lines = block.strip().splitlines()
    assert [shlex.split(line)[1] for line in lines] == [
        'tools/dataset_tools/make_fake_wilds.py', 'tools/train.py',
        'tools/test.py']
    for line in lines:
        args = shlex.split(line)
        assert args[0] == 'python'
        proc = subprocess.run([sys.executable] + args[1:], cwd=tmp_path,
                              env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, (line, proc.stdout[-2000:],
                                      proc.stderr[-3000:])
    work = tmp_path / 'work_dirs' / 'drm_tiny_fake_iwildcam'
    assert (work / 'epoch_2.pth').is_file()
    # the last call, tools/test.py, evaluated the checkpoint
    assert re.search(r'Epoch\(test\) \[1/1\] +accuracy/top1: ',
                     proc.stdout + proc.stderr)
