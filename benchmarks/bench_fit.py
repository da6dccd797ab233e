"""Learner.fit against a plain PyTorch loop: same model, data, optimizer and epochs, in one run.

    python benchmarks/bench_fit.py [--device cpu|cuda] [--epochs 10] [--repeats 5]

Both train a small CNN (`simple_cnn`) on MNIST_TINY (709 training and 699 validation digits, read once
into tensors) with AdamW-style updates (Adam, betas 0.9/0.99, decoupled weight decay 1e-2), batch
size 64, and validate after every epoch (loss and accuracy), and both read the loss of every batch
(`loss.item()`), as a training loop that reports its loss does. They alternate, `repeats` times each,
from the same initial weights; the script prints the median and best times and their ratios to the
plain loop. Target: the Learner's overhead at most 10%.
"""
import argparse, contextlib, io, statistics, time
from functools import partial

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from coursekit.basics import DataBunch, Learner, URLs, accuracy, set_seed, simple_cnn, untar_data


def load(folder):
    "The PNGs of `folder/<label>/` as a (n, 1, 28, 28) float tensor and label indices."
    files = sorted(folder.glob('*/*.png'))
    classes = sorted({f.parent.name for f in files})
    x = np.stack([np.asarray(PIL.Image.open(f).convert('L'), dtype=np.float32) for f in files])/255.
    return torch.from_numpy(x)[:, None], torch.tensor([classes.index(f.parent.name) for f in files])


def plain_fit(model, data, epochs, lr, wd):
    "A hand-written PyTorch training loop, the baseline."
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=wd)
    for _ in range(epochs):
        model.train()
        for xb, yb in data.train_dl:
            loss = F.cross_entropy(model(xb), yb)
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
            loss.item()
        model.eval()
        tot, acc, n = 0., 0., 0
        with torch.no_grad():
            for xb, yb in data.valid_dl:
                out = model(xb)
                tot += F.cross_entropy(out, yb)*len(yb); acc += accuracy(out, yb)*len(yb); n += len(yb)
        float(tot/n), float(acc/n)


def learner_fit(model, data, epochs, lr, wd, silent):
    "The same with coursekit's Learner (progress bars and table on, unless `silent`)."
    learn = Learner(data, model, metrics=accuracy, wd=wd, silent=silent)
    with contextlib.redirect_stdout(io.StringIO()): learn.fit(epochs, lr)
    return learn


def timed(f, sync):
    sync(); t = time.perf_counter(); f(); sync()
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--threads', type=int, default=1, help='CPU threads for torch (1 keeps timings steady on a shared machine)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    path = untar_data(URLs.MNIST_TINY)
    data = DataBunch.create(TensorDataset(*load(path/'train')), TensorDataset(*load(path/'valid')), bs=64, device=dev)
    set_seed(0)
    init = simple_cnn((1, 16, 32, 2)).state_dict()
    def fresh():
        m = simple_cnn((1, 16, 32, 2)); m.load_state_dict(init)
        return m.to(dev)
    runs = {'plain': lambda: plain_fit(fresh(), data, a.epochs, 1e-3, 1e-2),
            'learner': lambda: learner_fit(fresh(), data, a.epochs, 1e-3, 1e-2, silent=False),
            'learner_silent': lambda: learner_fit(fresh(), data, a.epochs, 1e-3, 1e-2, silent=True)}
    for f in runs.values(): f()  # warm up
    times = {k: [] for k in runs}
    for _ in range(a.repeats):
        for k, f in runs.items(): times[k].append(timed(f, sync))
    med, best = ({k: f(v) for k, v in times.items()} for f in (statistics.median, min))
    print(f'device {dev}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {a.epochs} epochs x {len(data.train_dl)} batches, '
          f'{len(data.train_ds)} train / {len(data.valid_ds)} valid, {a.repeats} runs each, alternating')
    for k in runs:
        print(f'  {k:15s} median {med[k]:7.3f} s ({med[k]/a.epochs*1000:6.1f} ms/epoch), ratio {med[k]/med["plain"]:.3f}   '
              f'best {best[k]:7.3f} s, ratio {best[k]/best["plain"]:.3f}')
    # the two loops compute the same thing: same weights after one epoch
    m1, m2 = fresh(), fresh()
    set_seed(1); plain_fit(m1, data, 1, 1e-3, 1e-2)
    set_seed(1); learner_fit(m2, data, 1, 1e-3, 1e-2, silent=True)
    diff = max((p1 - p2).abs().max().item() for p1, p2 in zip(m1.parameters(), m2.parameters()))
    print(f'  largest weight difference after one epoch, plain vs learner: {diff:.2e}')


if __name__ == '__main__':
    main()
