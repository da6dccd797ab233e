"""Vision benchmarks: figures printed side by side, measured in the same run.

  mnist     resnet18 from scratch on MNIST_TINY, fit_one_cycle(3, 1e-2): accuracy and time; with
            --fastai-python, fastai v2 runs the same recipe (benchmarks/fastai_v2_mnist_tiny.py) in the same run.
  pipeline  images per second: decode + resize on the CPU (0 and N workers), augmentation as batch
            tensor ops (CPU, and CUDA when there is a GPU), and the whole training loader.
  pets      resnet34 on the pets sample: coursekit's loop against a plain PyTorch loop (torchvision
            transforms on the CPU, torch.optim AdamW + OneCycleLR) on the same images and model: seconds
            per epoch and the error rate each reaches.

Run: .venv/bin/python benchmarks/bench_vision.py [--what mnist pipeline pets] [--device cuda] [--threads 2]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from coursekit.vision import (untar_data, URLs, ImageDataBunch, ImageList, cnn_learner, models, accuracy, error_rate,
                              get_transforms, imagenet_stats, set_seed, defaults)
from coursekit.vision.transform import ImageBatchTransform
from coursekit.vision.learner import cnn_model
from timing import sync as _sync      # benchmarks/timing.py




def bench_mnist(args):
    "coursekit (and fastai v2 if given) on MNIST_TINY: resnet18 from scratch, 3 epochs of one cycle at 1e-2."
    path = untar_data(URLs.MNIST_TINY)
    set_seed(42)
    data = ImageDataBunch.from_folder(path, bs=64, num_workers=0, device=args.device)     # 28x28 as they are, no augmentation
    learn = cnn_learner(data, models.resnet18, pretrained=False, metrics=accuracy, silent=True)
    _sync(args.device); t = time.perf_counter()
    learn.fit_one_cycle(3, 1e-2)
    _sync(args.device); secs = time.perf_counter() - t
    res = [{'library': 'coursekit', 'accuracy': round(float(learn.recorder.metrics[-1][0]), 4), 'fit_seconds': round(secs, 2)}]
    if args.fastai_python:
        r = subprocess.run([args.fastai_python, str(Path(__file__).parent/'fastai_v2_mnist_tiny.py'), '--data', str(path),
                            '--threads', str(args.threads)], capture_output=True, text=True)
        if r.returncode: print('fastai run failed:', r.stderr[-2000:])
        else:
            f = json.loads(r.stdout.strip().splitlines()[-1])
            res.append({'library': f"fastai {f['version']}", 'accuracy': round(f['accuracy'], 4), 'fit_seconds': round(f['fit_seconds'], 2)})
    print('\nMNIST_TINY, resnet18 from scratch, fit_one_cycle(3, 1e-2), bs 64, 28 px, no augmentation')
    for r in res: print(f"  {r['library']:14s} accuracy {r['accuracy']:.4f}   fit {r['fit_seconds']:6.2f} s")
    if len(res) == 2: print(f"  time ratio coursekit/fastai: {res[0]['fit_seconds']/res[1]['fit_seconds']:.2f}")


def _forever(loader):
    "The batches of `loader`, epoch after epoch."
    while True: yield from loader

def _rate(loader, n_batches:int, device='cpu') -> float:
    "Images per second over `n_batches` batches of `loader` (epoch after epoch, after one warm-up batch)."
    it = _forever(loader)
    next(it)
    _sync(device); t, n = time.perf_counter(), 0
    for _ in range(n_batches): n += len(next(it)[0])
    _sync(device)
    return n/(time.perf_counter() - t)


def _augmented(aug, xb):
    "The batch of bytes `xb` through the batch transform `aug`, again and again."
    while True: yield aug((xb, torch.zeros(len(xb), device=xb.device)))


def bench_pipeline(args):
    "Images per second through each stage of the vision data pipeline, on the pets sample (real JPEGs)."
    path = untar_data(URLs.PETS)/'images'
    fnames = sorted(path.glob('*.jpg'))
    print(f'\nData pipeline, pets sample ({len(fnames)} JPEGs, median size '
          f"{int(np.median([os.path.getsize(f) for f in fnames])/1024)} KB), to 224 px, bs 64")
    for nw in sorted({0, args.workers}):
        data = ImageDataBunch.from_name_re(path, fnames, r'/([^/]+)_\d+.jpg$', ds_tfms=get_transforms(), size=224, bs=64,
                                           num_workers=nw, valid_pct=0.)
        cpu = _rate(data.train_dl.dl, 20)                     # the DataLoader alone: decode + resize + collate
        print(f'  decode + resize (CPU, {nw} workers):      {cpu:8.0f} images/s')
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    aug = ImageBatchTransform(get_transforms()[0])
    for dev in devices:
        xb = (torch.rand(64, 3, 224, 224, device=dev)*255).to(torch.uint8)
        rate = _rate(_augmented(aug, xb), 20, dev)
        print(f'  augmentation, one resampling ({dev}):     {rate:8.0f} images/s')
    for dev in devices:
        data = ImageDataBunch.from_name_re(path, fnames, r'/([^/]+)_\d+.jpg$', ds_tfms=get_transforms(), size=224, bs=64,
                                           num_workers=args.workers, valid_pct=0., device=dev).normalize(imagenet_stats)
        print(f'  whole training loader ({dev}, {args.workers} workers): {_rate(data.train_dl, 20, dev):8.0f} images/s')
    base = torch.utils.data.DataLoader(_PlainPets(fnames, [0]*len(fnames), _plain_tfms(224)[0]), 64, shuffle=True, drop_last=True,
                                       num_workers=args.workers, persistent_workers=args.workers > 0)
    print(f'  baseline: torchvision transforms per image on the CPU, {args.workers} workers: {_rate(base, 20):8.0f} images/s')


class _PlainPets(torch.utils.data.Dataset):
    "The pets sample as a plain PyTorch dataset with torchvision transforms on the CPU."
    def __init__(self, fnames, labels, tfm): self.fnames, self.labels, self.tfm = fnames, labels, tfm
    def __len__(self): return len(self.fnames)
    def __getitem__(self, i):
        import PIL.Image
        return self.tfm(PIL.Image.open(self.fnames[i]).convert('RGB')), self.labels[i]


def _plain_tfms(size:int):
    "torchvision's per-image CPU transforms close to `get_transforms()`: training and validation."
    import torchvision.transforms as T
    norm = T.Normalize(*imagenet_stats)
    return (T.Compose([T.RandomResizedCrop(size, scale=(0.35, 1)), T.RandomHorizontalFlip(), T.RandomRotation(10),
                       T.ColorJitter(0.2, 0.2), T.ToTensor(), norm]),
            T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), norm]))


def _plain_loop(model, train_dl, valid_dl, epochs, lr, device):
    "A plain PyTorch training loop: AdamW and OneCycleLR, cross-entropy; seconds per epoch and final error."
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs*len(train_dl), pct_start=0.3, div_factor=25.)
    times = []
    for _ in range(epochs):
        _sync(device); t = time.perf_counter()
        model.train()
        for xb, yb in train_dl:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward(); opt.step(); opt.zero_grad(); sched.step()
        model.eval(); wrong = n = 0
        with torch.no_grad():
            for xb, yb in valid_dl:
                wrong += (model(xb.to(device)).argmax(1).cpu() != yb).sum().item(); n += len(yb)
        _sync(device); times.append(time.perf_counter() - t)
    return times, wrong/n


def bench_pets(args):
    "resnet34 from scratch on the pets sample: coursekit against a plain PyTorch loop, same images, model and schedule."
    path = untar_data(URLs.PETS)/'images'
    fnames = sorted(path.glob('*.jpg'))
    set_seed(42)
    data = ImageDataBunch.from_name_re(path, fnames, r'/([^/]+)_\d+.jpg$', ds_tfms=get_transforms(), size=args.size, bs=args.bs,
                                       num_workers=args.workers, seed=42, device=args.device).normalize(imagenet_stats)
    learn = cnn_learner(data, models.resnet34, pretrained=False, metrics=error_rate, silent=True)
    _sync(args.device); t = time.perf_counter()
    learn.fit_one_cycle(args.epochs, 1e-3)
    ck_epoch = (time.perf_counter() - t)/args.epochs
    ck_err = float(learn.recorder.metrics[-1][0])
    # the plain loop: the same split, labels and model architecture
    tr, va = data.train_ds, data.valid_ds
    ttf, vtf = _plain_tfms(args.size)
    mk = lambda ds, tfm, shuffle: torch.utils.data.DataLoader(_PlainPets(list(ds.x.items), ds.y.codes.tolist(), tfm), args.bs,
                                                              shuffle=shuffle, drop_last=shuffle, num_workers=args.workers,
                                                              pin_memory=torch.device(args.device).type == 'cuda',
                                                              persistent_workers=args.workers > 0)
    set_seed(42)
    model = cnn_model('resnet34', data.c).to(args.device)
    times, plain_err = _plain_loop(model, mk(tr, ttf, True), mk(va, vtf, False), args.epochs, 1e-3, args.device)
    plain_epoch = float(np.mean(times))
    print(f'\nPets sample ({len(tr)} train / {len(va)} valid, {data.c} breeds), resnet34 from scratch, {args.size} px, bs {args.bs}, '
          f'{args.epochs} epochs, {args.device}, {args.workers} workers')
    print(f'  coursekit   {ck_epoch:7.2f} s/epoch   error_rate {ck_err:.3f}')
    print(f'  plain torch {plain_epoch:7.2f} s/epoch   error_rate {plain_err:.3f}')
    print(f'  time ratio coursekit/plain: {ck_epoch/plain_epoch:.2f}')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--what', nargs='+', default=['mnist', 'pipeline', 'pets'], choices=['mnist', 'pipeline', 'pets'])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--workers', type=int, default=min(8, defaults.cpus))
    p.add_argument('--fastai-python', help='the python of a venv with fastai v2 installed, for the MNIST comparison')
    p.add_argument('--size', type=int, default=224 if torch.cuda.is_available() else 128)
    p.add_argument('--bs', type=int, default=64 if torch.cuda.is_available() else 32)
    p.add_argument('--epochs', type=int, default=5 if torch.cuda.is_available() else 3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    defaults.device = torch.device(args.device)
    print(f'torch {torch.__version__}, device {args.device}'
          f"{' (' + torch.cuda.get_device_name() + ')' if torch.device(args.device).type == 'cuda' else ''}, {args.threads} threads")
    for w in args.what: globals()[f'bench_{w}'](args)
