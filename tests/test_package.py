"The package as a student imports it: the entry points, their names, the environment they need."
import subprocess, sys

import pytest


def _run(code):
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize('entry', ['coursekit', 'coursekit.basics'])
def test_star_import_gives_the_lessons_names(entry):
    out = _run(f'from {entry} import *\n'
               'names = [k for k in dir() if not k.startswith("__")]\n'
               'print(" ".join(sorted(names)))')
    names = set(out.split())
    for n in ('np pd plt torch nn F optim Path partial gc gzip pickle PIL random re math itemgetter TensorDataset '
              'Tensor LongTensor defaults tensor untar_data URLs Config set_seed to_device DataBunch DatasetType load_data '
              'Learner load_learner lr_find fit_one_cycle accuracy error_rate top_k_accuracy accuracy_thresh fbeta dice '
              'exp_rmspe mean_squared_error root_mean_squared_error mean_absolute_error r2_score Flatten bn_drop_lin '
              'conv_layer res_block MergeLayer SequentialEx NormType AdaptiveConcatPool2d SigmoidRange simple_cnn embedding '
              'MSELossFlat CrossEntropyFlat BCEWithLogitsFlat children requires_grad Callback Recorder CSVLogger '
              'EarlyStoppingCallback SaveModelCallback TerminateOnNaN GradientClipping').split():
        assert n in names, n
    assert not [n for n in names if n.startswith('_')]


def test_callbacks_entry_point():
    out = _run('from coursekit.callbacks import *\n'
               'names = [k for k in dir() if not k.startswith("__")]\n'
               'print(" ".join(sorted(names)))')
    names = set(out.split())
    for n in 'Callback Recorder CSVLogger OneCycleScheduler LRFinder GradientClipping MixedPrecision EarlyStoppingCallback SaveModelCallback'.split():
        assert n in names, n
    assert not [n for n in names if n.startswith('_')]


def test_defaults_device_override():
    out = _run('import torch, coursekit\n'
               'coursekit.defaults.device = torch.device("cpu")\n'
               'from coursekit.core import to_device, defaults\n'
               'print(to_device(torch.ones(1)).device, defaults is coursekit.defaults)')
    assert out.split() == ['cpu', 'True']


def test_path_ls_is_ours_even_after_fastcore():
    out = _run('import coursekit, fastcore.xtras, tempfile\n'
               'from pathlib import Path\n'
               'd = Path(tempfile.mkdtemp()); [(d/n).touch() for n in "cab"]\n'
               'print([p.name for p in d.ls()])')
    assert out.strip() == "['a', 'b', 'c']"


def test_torchvision_ops_work():
    "torch and torchvision must be a matching pair: their compiled ops load."
    import torch, torchvision
    keep = torchvision.ops.nms(torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60.]]), torch.tensor([.9, .8, .7]), 0.5)
    assert keep.tolist() == [0, 2]


def test_modules_declare_all():
    import importlib, pkgutil, coursekit
    for m in pkgutil.walk_packages(coursekit.__path__, 'coursekit.'):
        if m.name.split('.')[-1].startswith('_'): continue
        mod = importlib.import_module(m.name)
        assert isinstance(getattr(mod, '__all__', None), list), f'{m.name} has no __all__'
        for n in mod.__all__: assert hasattr(mod, n), f'{m.name}.__all__ names {n}, which does not exist'
