"Hooks across the package: the lesson-6 heatmap lines, a hook whose module never ran, hooks removed when a block fails, and the library's own users of `Hook.stored`."
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from coursekit.callbacks.hooks import Hook, Hooks, HookNotRunError, hook_output, hook_outputs, model_sizes, num_features_model
from coursekit.interpret import grad_cam
from coursekit.layers import Flatten
from coursekit.vision.learner import cnn_model
from coursekit.widgets import _activations


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _n_hooks(m:nn.Module) -> int:
    return sum(len(l._forward_hooks) + len(l._backward_hooks) for l in m.modules())


@pytest.fixture
def cnn():
    "The course's CNN (resnet18 body and head, random weights) in eval mode, with its body frozen but its batchnorm trainable, as `cnn_learner` leaves it."
    torch.manual_seed(0)
    m = cnn_model('resnet18', 3).eval()
    for l in m[0].modules():
        if not isinstance(l, nn.BatchNorm2d):
            for p in l.parameters(recurse=False): p.requires_grad_(False)
    return m


@pytest.mark.filterwarnings('ignore:Full backward hook')
def test_lesson6_heatmap_lines(cnn):
    "The lesson's `hooked_backward`: nested `with` blocks, then `stored` read after them."
    xb = torch.randn(1, 3, 64, 64)
    def hooked_backward(cat=1):
        with hook_output(cnn[0]) as hook_a:
            with hook_output(cnn[0], grad=True) as hook_g:
                preds = cnn(xb)
                preds[0, int(cat)].backward()
        return hook_a, hook_g
    hook_a, hook_g = hooked_backward()
    acts = hook_a.stored[0].cpu()
    grad = hook_g.stored[0][0].cpu()
    assert acts.shape == grad.shape == (512, 2, 2)
    mult = (acts*grad.mean(1).mean(1)[..., None, None]).mean(0)
    assert mult.shape == (2, 2)
    assert _n_hooks(cnn) == 0


def test_not_run_errors(cnn):
    "Reading a hook whose module never ran says which module and what to do."
    xb = torch.randn(1, 3, 64, 64)
    with hook_output(cnn[1]) as h:
        with pytest.raises(HookNotRunError, match='has not run since the hook was put on it'): h.stored
        cnn[0](xb)  # the body only: the head never runs
    with pytest.raises(HookNotRunError, match=r'forward hook on Sequential has nothing stored'): h.stored
    with hook_output(cnn[0], grad=True) as hg: cnn(xb)
    with pytest.raises(HookNotRunError, match=r'Call `\.backward\(\)`'): hg.stored
    with torch.no_grad(), hook_output(nn.Linear(3, 4)) as h: pass
    with pytest.raises(HookNotRunError, match=r'Linear\(in_features=3, out_features=4, bias=True\)'): h.stored
    assert isinstance(HookNotRunError(), RuntimeError)


def test_hooks_stored_names_the_missing_module():
    m = nn.ModuleDict({'a': nn.Linear(2, 2), 'b': nn.Conv2d(1, 1, 3)})
    with Hooks([m['a'], m['b']], lambda mod, i, o: o.shape) as hs:
        m['a'](torch.zeros(1, 2))
        assert hs[0].stored == (1, 2)
        with pytest.raises(HookNotRunError, match='Conv2d'): hs.stored


def test_removed_when_the_block_raises(cnn):
    with pytest.raises(RuntimeError):
        with hook_output(cnn[0]) as a, hook_output(cnn[0], grad=True) as g, hook_outputs(list(cnn[1])) as hs:
            cnn(torch.randn(1, 5, 64, 64))  # 5 channels: the first convolution raises
    assert _n_hooks(cnn) == 0
    with pytest.raises(KeyError):
        with Hook(cnn[1], lambda *a: 1): raise KeyError('x')
    assert _n_hooks(cnn) == 0


def test_library_users_of_stored(cnn):
    "`model_sizes`, `num_features_model`, Grad-CAM and the widgets' activations read `stored` as before."
    assert model_sizes(cnn[0], (64, 64))[-1] == (1, 512, 2, 2)
    assert num_features_model(cnn[0]) == 512
    xb = torch.randn(1, 3, 64, 64)
    cam = grad_cam(cnn, xb, 2)
    assert cam.shape == (2, 2) and (cam >= 0).all()
    assert _n_hooks(cnn) == 0
    dl = [(torch.randn(4, 3, 32, 32), torch.zeros(4)), (torch.randn(3, 3, 32, 32), torch.zeros(3))]
    feats = _activations(SimpleNamespace(model=cnn), cnn[0], dl)
    assert feats.shape == (7, 1024)  # max and average pooled, side by side
    assert _n_hooks(cnn) == 0


def test_plot_multi_is_a_lesson_name():
    import coursekit.basics, coursekit.vision
    from coursekit.core import plot_multi
    assert coursekit.basics.plot_multi is plot_multi and coursekit.vision.plot_multi is plot_multi
    assert 'plot_multi' in coursekit.vision.__all__ and 'plot_multi' in coursekit.basics.__all__
