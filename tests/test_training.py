"The training engine under faults: interrupts, crashes while saving, empty sets, short data, bad shapes, and its output."
import contextlib, io, math, os, signal, subprocess, sys, textwrap, time, warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from coursekit.basics import (DataBunch, Learner, Callback, CSVLogger, GradientClipping, EarlyStopping, LRFinder, accuracy,
                              fbeta, r2_score, set_seed, simple_cnn)


def tiny_data(n=256, bs=32, n_valid=64, **kw):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g); y = (x.sum(1) > 0).long()
    return DataBunch.create(TensorDataset(x[n_valid:], y[n_valid:]), TensorDataset(x[:n_valid], y[:n_valid]), bs=bs, device='cpu', **kw)


def tiny_model(): return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Linear(16, 2))


class Interrupt(Callback):
    "Press Ctrl-C in the middle of epoch `epoch`, batch `batch`, during the step."
    def __init__(self, epoch, batch): self.at = (epoch, batch)
    def after_backward(self):
        if (self.learn.epoch, self.learn.iter) == self.at: raise KeyboardInterrupt


def test_keyboard_interrupt_leaves_learner_usable():
    set_seed(0)
    learn = Learner(tiny_data(), tiny_model(), metrics=accuracy, silent=True)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(3, 1e-2, callbacks=[Interrupt(1, 3)])
    r = learn.recorder
    n = len(learn.data.train_dl)
    assert len(r.losses) == len(r.lrs) == len(r.moms) == n + 3  # batches recorded up to the interrupt
    assert r.nb_batches == [n, 3] and len(r.val_losses) == 2 and r.val_losses[1] is None  # the interrupted epoch counts
    assert learn.cbs == [] and not learn.training
    assert all(p.grad is None for p in learn.model.parameters())
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    learn.fit(2, 1e-2)  # trains again as if nothing happened
    assert len(learn.recorder.val_losses) == 2 and learn.validate()[1] > 0.9


def test_interrupt_during_lr_find_restores_weights():
    learn = Learner(tiny_data(), tiny_model(), silent=True)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(KeyboardInterrupt):
        learn.fit(1, 1e-2, callbacks=[Interrupt(0, 2), LRFinder()])
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, before[k]), k


def test_lr_find_on_short_data_runs_several_epochs_and_twice():
    data = tiny_data(n=96, bs=16, n_valid=32)  # 4 batches per epoch
    learn = Learner(data, tiny_model(), silent=True)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        set_seed(3); learn.lr_find(num_it=30, stop_div=False)
    lrs = learn.recorder.lrs
    assert len(lrs) == 30 and math.isclose(lrs[-1], 1e-7*(1e8)**(29/30))
    assert learn.recorder.nb_batches == [4]*7 + [2]  # 8 epochs, the last one cut short by the end of the sweep
    assert learn.recorder.val_losses == [None]*8  # no validation during the sweep
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, before[k]), k
    with contextlib.redirect_stdout(out):
        set_seed(3); learn.lr_find(num_it=30, stop_div=False)
    assert learn.recorder.lrs == lrs
    learn.fit(1, 1e-2)  # and the learner trains normally afterwards
    assert len(learn.recorder.val_losses) == 1


def test_lr_find_with_nothing_to_train_on():
    learn = Learner(tiny_data(n=64, n_valid=64), tiny_model(), silent=True)
    with pytest.raises(ValueError, match='no batches'): learn.lr_find()


def test_empty_validation_set():
    learn = Learner(tiny_data(n_valid=0), tiny_model(), metrics=[accuracy], silent=False,
                    callbacks=[EarlyStopping(patience=0)])
    out = io.StringIO()
    with contextlib.redirect_stdout(out): learn.fit(2, 1e-2)
    assert out.getvalue().count('#na#') >= 4, out.getvalue()  # valid_loss and accuracy, both epochs
    assert learn.recorder.val_losses == [None, None] and learn.recorder.metrics == [[None], [None]]
    with pytest.warns(UserWarning, match='validation set is empty'):
        assert learn.validate() == [None, None]
    with pytest.raises(ValueError, match='Valid set is empty'): learn.get_preds()


def test_whole_set_metrics_in_fit():
    "fbeta and r2 in the table are the values on the whole validation set, not means of batch values."
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g); y = (x[:, :3] + 0.5*torch.randn(200, 3, generator=g) > 0).float()
    data = DataBunch.create(TensorDataset(x[:130], y[:130]), TensorDataset(x[130:], y[130:]), bs=16, device='cpu')
    learn = Learner(data, nn.Linear(4, 3), loss_func=nn.BCEWithLogitsLoss(), metrics=[partial(fbeta, thresh=0.5), r2_score], silent=True)
    learn.fit(1, 1e-2)
    preds, targs = learn.get_preds()  # sigmoid already applied
    logits = torch.logit(preds.clamp(1e-7, 1 - 1e-7))
    f, r2 = learn.recorder.metrics[-1]
    assert math.isclose(f, float(fbeta(logits, targs, thresh=0.5)), rel_tol=1e-4)
    assert math.isclose(r2, float(r2_score(logits, targs)), rel_tol=1e-4)
    assert learn.metric_names == ['fbeta', 'r2_score']


def test_loss_shape_error_names_both_shapes():
    x, y = torch.randn(64, 2), torch.randn(64, 5)
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=32, device='cpu')
    learn = Learner(data, nn.Linear(2, 3), loss_func=nn.MSELoss(), silent=True)
    with pytest.raises(RuntimeError) as e, warnings.catch_warnings():
        warnings.simplefilter('ignore')  # PyTorch's own broadcasting warning
        learn.fit(1)
    assert '(32, 3)' in str(e.value) and '(32, 5)' in str(e.value)


def test_no_loss_function_is_a_clear_error():
    class Items(torch.utils.data.Dataset):
        def __len__(self): return 8
        def __getitem__(self, i): return torch.zeros(2), 0
    data = DataBunch.create(Items(), Items(), bs=4, device='cpu', num_workers=0)
    learn = Learner(data, nn.Linear(2, 2), silent=True)
    with pytest.raises(ValueError, match='No loss function'): learn.fit(1)


def test_save_is_atomic_when_the_process_dies(tmp_path):
    "A process killed while saving over a model never leaves a broken file behind."
    script = textwrap.dedent(f'''
        import torch, sys
        from torch import nn
        from torch.utils.data import TensorDataset
        from coursekit.basics import DataBunch, Learner
        x = torch.randn(8, 2); y = torch.zeros(8).long()
        data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), path={str(tmp_path)!r}, device='cpu')
        learn = Learner(data, nn.Sequential(nn.Linear(2, 1500), nn.Linear(1500, 1500)), silent=True)
        learn.save('model'); print('saved', flush=True)
        i = 0
        while True:
            with torch.no_grad(): learn.model[0].bias.fill_(i)
            learn.save('model'); i += 1
    ''')
    for delay in (0.3, 0.7, 1.1):
        p = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == 'saved'
        time.sleep(delay)
        p.send_signal(signal.SIGKILL); p.wait()
        state = torch.load(tmp_path/'models'/'model.pth', weights_only=True)
        b = state['model']['0.bias']
        assert torch.all(b == b[0])  # one whole save, not a mix of two
    visible = [f.name for f in (tmp_path/'models').iterdir() if not f.name.startswith('.')]
    assert visible == ['model.pth']


def test_export_is_plain_data_and_loads_in_a_fresh_process(tmp_path):
    imgs = torch.randn(40, 1, 8, 8); ys = (imgs.mean((1, 2, 3)) > 0).long()
    data = DataBunch.create(TensorDataset(imgs[:32], ys[:32]), TensorDataset(imgs[32:], ys[32:]), bs=8, path=tmp_path, device='cpu')
    learn = Learner(data, simple_cnn((1, 8, 2)), silent=True)
    learn.fit(1, 1e-2)
    learn.export()
    torch.save(imgs[35], tmp_path/'item.pt')
    expected = learn.predict(imgs[35])[2]
    code = ("import torch, coursekit; coursekit.defaults.device = torch.device('cpu')\n"
            "from coursekit.learner import load_learner\n"
            f"learn = load_learner({str(tmp_path)!r})\n"
            f"print(learn.predict(torch.load({str(tmp_path/'item.pt')!r}))[2].tolist())")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''})
    assert r.returncode == 0, r.stderr
    assert np.allclose(eval(r.stdout), expected.tolist(), atol=1e-6)
    assert 'Warning' not in r.stderr


def test_progress_and_table_in_a_terminal_and_quiet_mode(tmp_path):
    code = ("import torch\nfrom torch import nn\nfrom torch.utils.data import TensorDataset\n"
            "from coursekit.basics import DataBunch, Learner, accuracy\n"
            "x = torch.randn(64, 2); y = (x.sum(1) > 0).long()\n"
            "data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=16, device='cpu')\n"
            "Learner(data, nn.Linear(2, 2), metrics=accuracy, silent={silent}).fit(2, 1e-2)\n")
    loud = subprocess.run([sys.executable, '-c', code.format(silent=False)], capture_output=True, text=True)
    assert loud.returncode == 0, loud.stderr
    lines = [l.strip('█ ') for l in loud.stdout.replace('\r', '\n').splitlines() if l.strip('█ ')]
    assert lines[0].split() == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time'], lines
    rows = [l.split() for l in lines if l.split()[0] in ('0', '1')]
    assert [r[0] for r in rows] == ['0', '1'] and all(len(r) == 5 for r in rows)
    quiet = subprocess.run([sys.executable, '-c', code.format(silent=True)], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stdout == ''


def test_csv_logger_and_gradient_clipping(tmp_path):
    norms = []
    class Norm(Callback):
        order = 30
        def after_backward(self):
            norms.append(float(torch.norm(torch.stack([p.grad.norm() for p in self.learn.model.parameters()]))))
    learn = Learner(tiny_data(), tiny_model(), metrics=accuracy, path=tmp_path, silent=True)
    learn.fit(2, 1e-1, callbacks=[CSVLogger(learn), GradientClipping(learn, clip=0.05), Norm()])  # fastai v1's call forms
    assert max(norms) <= 0.05 + 1e-6
    df = CSVLogger(); df.learn = learn
    t = df.read_logged_file()
    assert list(t.columns) == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time'] and len(t) == 2
    assert np.allclose(t.valid_loss, learn.recorder.val_losses)


def test_to_fp16_on_cpu_warns_and_trains():
    learn = Learner(tiny_data(), tiny_model(), silent=True)
    with pytest.warns(UserWarning, match='needs a CUDA GPU'):
        assert learn.to_fp16() is learn
    learn.fit(1, 1e-2)
    assert len(learn.recorder.val_losses) == 1
