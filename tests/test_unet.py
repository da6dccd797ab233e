"The U-Net: output size for any input size, the too-small error, hooks and copies, learning, export and load_learner, pretrained weights."
import copy, gc, pickle

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from coursekit.data import DataBunch
from coursekit.layers import CrossEntropyFlat, MSELossFlat, NormType
from coursekit.learner import Learner, load_learner
from coursekit.vision.learner import create_body, models
from coursekit.vision.unet import DynamicUnet, SelfAttention, UnetBlock, unet_learner


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_encoder():
    "An encoder with a resnet's size arithmetic (7x7 stem and max pool at stride 2, then stages of stride 1, 2, 2, 2) and few channels."
    def stage(ni, nf, stride): return nn.Sequential(nn.Conv2d(ni, nf, 3, stride, 1), nn.BatchNorm2d(nf), nn.ReLU())
    return nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                         stage(8, 8, 1), stage(8, 16, 2), stage(16, 16, 2), stage(16, 32, 2))


def hooks_on(encoder): return sum(len(l._forward_hooks) for l in encoder.modules())


def test_output_has_the_input_size():
    m = DynamicUnet(tiny_encoder(), 3, (64, 64), self_attention=True, blur=True).eval()
    sizes = [(h, 32 + (h*7) % 41) for h in range(32, 72)] + [(96, 128), (100, 130), (360, 480), (33, 1000)]
    with torch.no_grad():
        for size in sizes: assert m(torch.randn(1, 3, *size)).shape == (1, 3, *size), size
    r18 = DynamicUnet(create_body('resnet18'), 5).eval()
    with torch.no_grad():
        for size in [(96, 128), (100, 130), (360, 480)]: assert r18(torch.randn(1, 3, *size)).shape == (1, 5, *size), size


def test_too_small_says_the_minimum_and_what_to_do():
    m = DynamicUnet(tiny_encoder(), 2, (32, 32))
    assert m.min_size == (32, 32)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 2, 32, 32)
    with pytest.raises(ValueError) as e: m(torch.randn(2, 3, 31, 64))
    msg = str(e.value)
    assert 'at least 32x32 pixels' in msg and '31x64' in msg and 'size=' in msg
    enc = tiny_encoder()
    with pytest.raises(ValueError, match='img_size is 16x16'): DynamicUnet(enc, 2, img_size=16)
    assert hooks_on(enc) == 0


def test_hooks_removed_deepcopy_and_pickle():
    torch.manual_seed(0)
    enc = tiny_encoder()
    m = DynamicUnet(enc, 2, (64, 64), self_attention=True)
    x = torch.randn(2, 3, 64, 64)
    m(x).mean().backward()                          # a training step leaves nothing (no graph) in the hooks
    assert all(h.stored is None for h in m.sfs) and enc[5][0].weight.grad.abs().sum() > 0
    m.eval()
    with torch.no_grad(): ref = m(x)
    plain = DynamicUnet(tiny_encoder(), 2, (64, 64)).eval()          # no parametrization (spectral norm): torch can pickle it
    with torch.no_grad(): ref_plain = plain(x)
    for m2, orig, r in ((copy.deepcopy(m), m, ref), (pickle.loads(pickle.dumps(plain)), plain, ref_plain)):
        blocks = [l for l in m2.layers if isinstance(l, UnetBlock)]
        assert [b.hook for b in blocks] == list(m2.sfs) and m2.layers[0] is not orig.layers[0]
        with torch.no_grad(): torch.testing.assert_close(m2(x), r)
        assert hooks_on(m2.layers[0]) == 4
    assert hooks_on(enc) == 4                       # the copies' hooks are on their own encoders
    m.remove_hooks()
    assert hooks_on(enc) == 0
    with pytest.raises(RuntimeError, match='remove_hooks'): m(x)
    m3 = DynamicUnet(enc, 2, (64, 64))
    assert hooks_on(enc) == 4
    del m3; gc.collect()
    assert hooks_on(enc) == 0                       # deleting the model takes its hooks off


def test_self_attention_trains():
    m = DynamicUnet(tiny_encoder(), 2, (64, 64), self_attention=True)
    assert sum(isinstance(l, SelfAttention) for l in m.modules()) == 1
    x, y = torch.randn(8, 3, 64, 64), torch.randint(0, 2, (8, 64, 64))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=4, device='cpu')
    learn = Learner(data, m, loss_func=CrossEntropyFlat(axis=1), silent=True)
    learn.fit(1, 1e-2)
    gamma = next(l for l in m.modules() if isinstance(l, SelfAttention)).gamma
    assert gamma.abs().item() > 0


def _blobs(n, size=64, seed=0):
    "Images of random bright rectangles on noise, and their masks."
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 3, size, size, generator=g)*0.5, torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        for _ in range(3):
            r, c = torch.randint(0, size - 24, (2,), generator=g).tolist()
            h, w = torch.randint(10, 24, (2,), generator=g).tolist()
            y[i, r:r+h, c:c+w] = 1
    x[:, 0] += y*1.5
    return x, y


def test_a_unet_learns_to_segment():
    torch.manual_seed(0)
    x, y = _blobs(96)
    data = DataBunch.create(TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:]), bs=16, device='cpu')
    def pixel_acc(inp, targ): return (inp.argmax(1) == targ).float().mean()
    learn = Learner(data, DynamicUnet(tiny_encoder(), 2, (64, 64)), loss_func=CrossEntropyFlat(axis=1), metrics=pixel_acc, silent=True)
    learn.fit_one_cycle(6, 3e-2)
    baseline = max(y[80:].float().mean(), 1 - y[80:].float().mean())        # always answering the most common class
    assert baseline < 0.85 and learn.recorder.metrics[-1][0] > 0.95, (baseline, learn.recorder.metrics)


def _image_data(tmp_path, n=8, size=(32, 48)):
    x = torch.randn(n, 3, *size)
    return DataBunch.create(TensorDataset(x[:6], x[:6]), TensorDataset(x[6:], x[6:]), bs=3, device='cpu', path=tmp_path)


def test_export_load_learner(tmp_path):
    torch.manual_seed(0)
    data = _image_data(tmp_path)
    assert data.c == 3
    learn = unet_learner(data, models.resnet18, pretrained=False, blur=True, self_attention=True, y_range=(-3, 3),
                         norm_type=NormType.Weight, bottleneck=True, loss_func=MSELossFlat(), silent=True)
    m = learn.model
    assert m.img_size == (32, 48) and len(learn.layer_groups) == 3
    assert learn.layer_groups[1][0] is m[0][6][0].conv1
    assert m.layers[-3][0][0].out_channels == m.layers[-3][0][0].in_channels//2        # bottleneck=True is bottle=True
    learn.fit(1, 1e-3)
    x = data.valid_ds.tensors[0]
    m.eval()
    with torch.no_grad(): ref = m(x)
    assert ref.shape == x.shape and ref.abs().max() < 3
    learn.export()
    state = torch.load(tmp_path/'export.pkl', weights_only=True)
    kw = state['model_recipe']['kwargs']
    assert kw['norm_type'] == 'Weight' and kw['bottle'] is True and kw['y_range'] == (-3.0, 3.0) and kw['self_attention'] is True
    learn2 = load_learner(tmp_path)
    learn2.model.eval()
    with torch.no_grad(): torch.testing.assert_close(learn2.model(x), ref)
    assert all(h.stored is None for h in learn2.model.sfs) and learn2.model.layers[0] is not m.layers[0]


def test_pretrained_encoder_comes_from_torch_cache_and_is_frozen(tmp_path, monkeypatch):
    old = torch.hub.get_dir()
    try:
        monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch'))
        torch.hub.set_dir(str(tmp_path/'torch'/'hub'))
        import torchvision
        w = torchvision.models.get_model_weights('resnet18').DEFAULT
        torch.manual_seed(1)
        sd = models.resnet18(weights=None).state_dict()
        folder = tmp_path/'torch'/'hub'/'checkpoints'; folder.mkdir(parents=True)
        torch.save(sd, folder/w.url.rsplit('/', 1)[-1])
        x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4, 32, 32))
        data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=2, device='cpu', path=tmp_path)
        learn = unet_learner(data, models.resnet18, loss_func=CrossEntropyFlat(axis=1), silent=True)
        enc = learn.model[0]
        torch.testing.assert_close(enc[0].weight.detach(), sd['conv1.weight'])
        torch.testing.assert_close(enc[6][1].bn2.running_var, sd['layer3.1.bn2.running_var'])
        assert not enc[0].weight.requires_grad and not enc[7][0].conv1.weight.requires_grad and enc[1].weight.requires_grad
        assert all(p.requires_grad for l in learn.model.layers[1:] for p in l.parameters())
    finally: torch.hub.set_dir(old)


def test_unet_learner_refuses_what_it_cannot_build(tmp_path):
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4, 32, 32))
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=2, device='cpu', path=tmp_path)
    with pytest.raises(ValueError, match='resnet'): unet_learner(data, models.densenet121, pretrained=False)
    small = DataBunch.create(TensorDataset(x[..., :16, :16], y[..., :16, :16]), TensorDataset(x, y), bs=2, device='cpu')
    with pytest.raises(ValueError, match='size='): unet_learner(small, models.resnet18, pretrained=False)
