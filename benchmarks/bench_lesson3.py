"""Lesson 3 benchmarks (multi-label, segmentation, points, augmentation with targets): coursekit and fastai v2 side by side, measured in the same run.

  planet    planet_sample (1000 CMYK JPEGs opened as RGB, labels.csv), the lesson's lines: ImageList.from_csv(path,
            'labels.csv', folder='train', suffix='.jpg') .split_by_idx(valid) .label_from_df(label_delim=' ')
            .transform(get_transforms(flip_vert=True, max_lighting=0.1, max_zoom=1.05, max_warp=0.), size=64)
            .databunch(bs=64).normalize(imagenet_stats), cnn_learner(resnet18, pretrained=False), fit_one_cycle(5, 1e-2).
            Metrics accuracy_thresh (0.2) and fbeta (thresh 0.2, beta 2).
  camvid    camvid_tiny (100 images 96x128, labels/<stem>_P.png, codes.txt): SegmentationItemList.from_folder(path/'images')
            .split_by_idx(valid) .label_from_func(get_y_fn, classes=codes) .transform(get_transforms(), size=(96,128),
            tfm_y=True) .databunch(bs=8).normalize(imagenet_stats), unet_learner(resnet18, pretrained=False),
            fit_one_cycle(4, 1e-3). Metric: the accuracy of the pixels whose target is not 'Void' (the course's acc_camvid).
  headpose  the pets sample's 237 images with a head box (annotations/xmls): the target is the box centre (row, column);
            PointsItemList.from_folder(path/'images') .filter_by_func(has an xml) .split_by_idx(valid)
            .label_from_func(head_ctr) .transform(get_transforms(), tfm_y=True, size=(120,160), resize_method=SQUISH)
            .databunch(bs=16).normalize(imagenet_stats), cnn_learner(resnet18, pretrained=False) (MSELossFlat from the
            data), fit_one_cycle(30, 1e-2). Metric: the validation MSE, and that of predicting the training set's mean point.
  aug       augmentation with tfm_y alone: images+masks per second on a batch of camvid_tiny's first 64 images (64, 3, 96, 128)
            and masks (64, 1, 96, 128), bytes: coursekit's ImageBatchTransform(get_transforms()[0], tfm_y=True,
            y_kind='mask'), fastai's batch transforms [IntToFloatTensor(), *aug_transforms()] on a TensorImage +
            TensorMask, and torchvision.transforms.v2 per item (flip, RandomPerspective(0.2), RandomAffine(10 degrees,
            zoom 1-1.1), ColorJitter(0.2, 0.2), each with p 0.75 like get_transforms; masks as tv_tensors.Mask); on the
            CPU, and CUDA when there is a GPU. Each counts the F.grid_sample calls one batch makes: coursekit should
            resample the images once and the masks once.

The validation sets are the same for both libraries: a random 20% of the items sorted by name,
`np.random.default_rng(split_seed).permutation(n)[:int(0.2*n)]` (coursekit's `split_by_rand_pct(0.2, seed)`), written
as names to a JSON file that both read (camvid 80/20, planet 800/200, headpose 190/47). Models are from scratch
(pretrained=False) with the same sizes, bs, epochs and lr; fastai gets `Normalize.from_stats(*imagenet_stats)` (it adds
none itself when not pretrained). The metrics come from get_preds over the whole validation set, computed by the same
code for both libraries (fbeta per image then averaged, like coursekit's `fbeta` and fastai's
`FBetaMulti(2, average='samples', thresh=0.2)`; the libraries' own metrics of the last epoch are printed under the
table). Head pose MSEs are in coursekit's coordinates: (row, column), -1 and 1 at the centres of the first and last
pixel row/column of the 120x160 image. fastai's points are (x, y) with -1 and 1 at the image's edges: its predictions
and targets are converted to pixels and back into coursekit's coordinates (fastai gets the box centre + 0.5 pixel, its
continuous coordinate of that pixel's centre, so that the converted targets equal coursekit's: "target err" is the
largest distance of each library's validation targets from a reference computed from the xml files and image sizes).

Each task runs in a fresh process per library, coursekit's (this script, `--child`) first, then, with
`--fastai-python PATH` (the python of a venv with fastai v2), fastai's: benchmarks/fastai_v2_lesson3.py runs the same
recipe on the same unpacked folders (it downloads nothing) and prints one JSON line that this script reads.
Alternating keeps both libraries under the same load when the machine is shared. The load average is printed: with
more busy threads than cores, torch's OpenMP threads spin while waiting and 2-thread epochs become 10 to 250 times
slower, so that the figures say nothing; `OMP_WAIT_POLICY=PASSIVE` in the environment (the subprocesses inherit it)
or `--threads 1` removes that. Both libraries set torch.set_num_threads(--threads), neither shows a progress bar or a
results table, and neither uses loader workers.

Per library and task: the metric(s) after the timed fit, the seconds building the data, the seconds of the fit call
(as the user waits for it: the first fit of a process pays torch's and the library's one-time costs), seconds per
epoch (an epoch-timer callback), the warm seconds per epoch (the best of --warm more `fit_one_cycle(1, lr)` calls on
the same learner), the CPU seconds of the timed fit (process time; spinning OpenMP threads count too), and the time
ratios coursekit/fastai. The issue's fastai v2 reference figures on the 2-core machine are printed with each table.

Run: .venv/bin/python benchmarks/bench_lesson3.py [--what planet camvid headpose aug] [--device cpu] [--threads 2]
         [--fastai-python PATH] [--warm 1] [--seed N] [--bs N] [--epochs N] [--quick]
     (on a busy machine: OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_lesson3.py ...)
     --quick: a smoke test on a few items (planet 128, camvid 24, headpose 48; 3 augmentation batches), not a benchmark.
"""
import argparse, json, os, subprocess, sys, tempfile, time
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from coursekit.vision import (untar_data, URLs, ImageList, SegmentationItemList, PointsItemList, get_transforms, imagenet_stats,
                              cnn_learner, unet_learner, models, accuracy_thresh, fbeta, ResizeMethod, set_seed, defaults)
from coursekit.vision.transform import ImageBatchTransform
from lesson3_targets import planet_metrics, head_ctr as head_ctr_px, ref_point      # benchmarks/lesson3_targets.py
from timing import sync as _sync, EpochTimer as _EpochTimer      # benchmarks/timing.py

TASKS = {'planet': dict(url='PLANET_SAMPLE', bs=64, epochs=5, lr=1e-2, quick=128,
                        ref='fastai v2 fbeta 0.726, accuracy_thresh 0.898, 43 s'),
         'camvid': dict(url='CAMVID_TINY', bs=8, epochs=4, lr=1e-3, quick=24, ref='fastai v2 foreground accuracy 0.605, 88.9 s'),
         'headpose': dict(url='PETS', bs=16, epochs=30, lr=1e-2, quick=48, ref='fastai v2 MSE 0.063 (mean point 0.066), 163 s'),
         'aug': dict(url='CAMVID_TINY', bs=64)}


def _run(learn, epochs:int, lr:float, args) -> tuple:
    "Time `fit_one_cycle(epochs, lr)`, get the predictions, then time `args.warm` more one-epoch fits."
    timer = _EpochTimer(args.device)
    _sync(args.device); t, c = time.perf_counter(), time.process_time()
    learn.fit_one_cycle(epochs, lr, callbacks=[timer])
    _sync(args.device); fit, cpu = time.perf_counter() - t, time.process_time() - c
    own = {k: round(float(v), 4) for k, v in learn.recorder.history[-1].items() if k not in ('epoch', 'time')}
    preds, targs = learn.get_preds()
    warm = []
    for _ in range(args.warm):
        _sync(args.device); t = time.perf_counter()
        learn.fit_one_cycle(1, lr)
        _sync(args.device); warm.append(time.perf_counter() - t)
    return preds, targs, {'fit_seconds': fit, 'cpu_seconds': cpu, 'epoch_seconds': timer.times, 'warm_epoch_seconds': warm, 'own': own}


def _valid_idx(il, valid:set, key) -> list:
    "The indices of the items of `il` whose `key` is in `valid`."
    return [i for i, o in enumerate(il.items) if key(Path(o)) in valid]


def coursekit_task(args, what:str, path:Path, split:dict) -> dict:
    "coursekit's recipe for `what` on `path`, validating on the items `split['valid']` names."
    task, valid, keep = TASKS[what], set(split['valid']), split['keep']
    bs, epochs, lr = args.bs or task['bs'], args.epochs or task['epochs'], task['lr']
    t = time.perf_counter()
    if what == 'planet':
        il = ImageList.from_csv(path, 'labels.csv', folder='train', suffix='.jpg')
        if keep is not None: il = il.filter_by_func(lambda o: Path(o).stem in keep)
        tfms = get_transforms(flip_vert=True, max_lighting=0.1, max_zoom=1.05, max_warp=0.)
        data = (il.split_by_idx(_valid_idx(il, valid, lambda o: o.stem)).label_from_df(label_delim=' ')
                .transform(tfms, size=64).databunch(bs=bs, num_workers=0).normalize(imagenet_stats))
    elif what == 'camvid':
        codes = np.loadtxt(path/'codes.txt', dtype=str)
        get_y_fn = lambda x: path/'labels'/f'{x.stem}_P{x.suffix}'
        il = SegmentationItemList.from_folder(path/'images')
        if keep is not None: il = il.filter_by_func(lambda o: Path(o).name in keep)
        data = (il.split_by_idx(_valid_idx(il, valid, lambda o: o.name)).label_from_func(get_y_fn, classes=codes)
                .transform(get_transforms(), size=(96, 128), tfm_y=True).databunch(bs=bs, num_workers=0).normalize(imagenet_stats))
    else:
        xmls = path/'annotations'/'xmls'
        head_ctr = lambda f: torch.tensor(head_ctr_px(xmls/f'{f.stem}.xml'))
        il = PointsItemList.from_folder(path/'images').filter_by_func(lambda o: (xmls/f'{Path(o).stem}.xml').exists()
                                                                      and (keep is None or Path(o).name in keep))
        data = (il.split_by_idx(_valid_idx(il, valid, lambda o: o.name)).label_from_func(head_ctr)
                .transform(get_transforms(), tfm_y=True, size=(120, 160), resize_method=ResizeMethod.SQUISH)
                .databunch(bs=bs, num_workers=0).normalize(imagenet_stats))
    data_seconds = time.perf_counter() - t
    if args.seed is not None: set_seed(args.seed)
    if what == 'planet':
        learn = cnn_learner(data, models.resnet18, pretrained=False, silent=True,
                            metrics=[partial(accuracy_thresh, thresh=0.2), partial(fbeta, thresh=0.2)])
    elif what == 'camvid': learn = unet_learner(data, models.resnet18, pretrained=False, silent=True)
    else: learn = cnn_learner(data, models.resnet18, pretrained=False, silent=True)
    preds, targs, r = _run(learn, epochs, lr, args)
    res = {**r, 'data_seconds': data_seconds, 'n_train': len(data.train_ds), 'n_valid': len(data.valid_ds),
           'batches': len(data.train_dl), 'bs': bs, 'epochs': epochs}
    if what == 'planet': res.update(planet_metrics(preds, targs), c=data.c)
    elif what == 'camvid':
        void = list(codes).index('Void')
        pred, targ = preds.argmax(1), targs.view(preds.shape[0], *preds.shape[2:])
        fg = targ != void
        res.update(acc_fg=float((pred[fg] == targ[fg]).float().mean()), c=data.c, shape=list(preds.shape[1:]))
    else:
        p, tg = preds.float().view(-1, 2), targs.float().view(-1, 2)
        ref = lambda fs: torch.tensor([ref_point(PIL.Image.open(f).size[::-1], head_ctr_px(xmls/f'{Path(f).stem}.xml')) for f in fs])
        mean_pt = ref(data.train_ds.x.items).mean(0)
        res.update(mse=float(((p - tg)**2).mean()), mean_mse=float(((tg - mean_pt)**2).mean()),
                   target_err=float((tg - ref(data.valid_ds.x.items)).abs().max()), loss_func=type(learn.loss_func).__name__)
    return res


def _camvid_batch(path:Path, n:int) -> tuple:
    "camvid_tiny's first `n` images (n, 3, 96, 128) and masks (n, 1, 96, 128), as bytes."
    fs = sorted((path/'images').glob('*.png'))[:n]
    x = torch.stack([torch.from_numpy(np.array(PIL.Image.open(f).convert('RGB'))).permute(2, 0, 1) for f in fs])
    y = torch.stack([torch.from_numpy(np.array(PIL.Image.open(path/'labels'/f'{f.stem}_P.png')))[None] for f in fs])
    return x, y


class _CountingF:
    "torch.nn.functional as a module sees it, counting the calls of grid_sample (input shape and mode) in `calls`."
    def __init__(self, F, calls): self.F, self.calls = F, calls
    def __getattr__(self, name): return getattr(self.F, name)
    def grid_sample(self, inp, grid, *args, **kwargs):
        self.calls.append([list(inp.shape), kwargs.get('mode', args[0] if args else 'bilinear')])
        return self.F.grid_sample(inp, grid, *args, **kwargs)


def _tv_tfms():
    "torchvision.transforms.v2 per item, close to get_transforms() (one resampling per geometric transform; constant fill)."
    import torchvision.transforms.v2 as T
    bil, p = T.InterpolationMode.BILINEAR, 0.75
    return T.Compose([T.ToDtype(torch.float32, scale=True), T.RandomHorizontalFlip(0.5),
                      T.RandomPerspective(distortion_scale=0.2, p=p, interpolation=bil),
                      T.RandomApply([T.RandomAffine(degrees=10, scale=(1., 1.1), interpolation=bil)], p=p),
                      T.RandomApply([T.ColorJitter(brightness=0.2)], p=p), T.RandomApply([T.ColorJitter(contrast=0.2)], p=p)])


def coursekit_aug(args, path:Path) -> dict:
    "Images+masks per second through coursekit's ImageBatchTransform and through torchvision v2 per item, and their grid_sample calls."
    import coursekit.vision.transform as ck_tfm
    import torchvision.transforms.v2.functional._geometry as tv_geom
    from torchvision import tv_tensors
    x0, y0 = _camvid_batch(path, args.bs or TASKS['aug']['bs'])
    aug = ImageBatchTransform(get_transforms()[0], tfm_y=True, y_kind='mask')
    tv = _tv_tfms()
    def tv_batch(b):
        out = [tv(tv_tensors.Image(x), tv_tensors.Mask(y)) for x, y in zip(*b)]
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])
    res = {}
    for dev in ['cpu'] + (['cuda'] if torch.cuda.is_available() else []):
        b = (x0.to(dev), y0.to(dev))
        for name, fn in (('coursekit', aug), ('torchvision', tv_batch)):
            xo, yo = fn(b)                                               # warm-up, and the checks
            calls = []
            if name == 'coursekit':
                F = ck_tfm.F; ck_tfm.F = _CountingF(F, calls)
                try: fn(b)
                finally: ck_tfm.F = F
            else:
                gs = tv_geom.grid_sample
                tv_geom.grid_sample = lambda inp, grid, *a, **k: _CountingF(torch.nn.functional, calls).grid_sample(inp, grid, *a, **k)
                try: fn(b)
                finally: tv_geom.grid_sample = gs
            _sync(dev); t = time.perf_counter()
            for _ in range(args.aug_batches): xo, yo = fn(b)
            _sync(dev)
            res.setdefault(name, {})[dev] = {'per_s': args.aug_batches*len(x0)/(time.perf_counter() - t), 'grid_sample_calls': calls,
                                             'x': [list(xo.shape), str(xo.dtype)], 'y': [list(yo.shape), str(yo.dtype)],
                                             'mask_codes_ok': bool(set(yo.unique().tolist()) <= set(y0.unique().tolist()))}
    return {**res, 'bs': len(x0), 'batches': args.aug_batches}


def make_split(what:str, path:Path, args) -> dict:
    "The validation names (a random 20% of the sorted names, seeded) and, with --quick, the few names to keep."
    if what == 'planet':
        import pandas as pd
        df = pd.read_csv(path/'labels.csv')
        names, tags = sorted(df.image_name), dict(zip(df.image_name, df.tags.str.split(' ')))
    elif what == 'camvid': names = sorted(f.name for f in (path/'images').glob('*.png'))
    else: names = sorted(f.name for f in (path/'images').glob('*.jpg') if (path/'annotations'/'xmls'/f'{f.stem}.xml').exists())
    perm = np.random.default_rng(args.split_seed).permutation(len(names))
    n_valid = int(0.2*len(names))
    valid, train = [names[i] for i in perm[:n_valid]], [names[i] for i in perm[n_valid:]]
    if not args.quick: return {'valid': valid, 'keep': None}
    n = TASKS[what]['quick']
    train = train[:n - n//5]
    if what == 'planet':      # only validation images whose tags the training subset has (else there is no output for them)
        seen = {t for o in train for t in tags[o]}
        valid = [o for o in valid if set(tags[o]) <= seen]
    valid = valid[:n//5]
    return {'valid': valid, 'keep': valid + train}


def _child_args(args) -> list:
    "The options both libraries' processes take."
    res = ['--threads', str(args.threads), '--device', args.device, '--warm', str(args.warm), '--aug-batches', str(args.aug_batches)]
    for k in ('bs', 'epochs', 'seed'):
        if getattr(args, k) is not None: res += [f'--{k}', str(getattr(args, k))]
    return res


def coursekit_results(args, what:str, split_file:str) -> dict:
    "coursekit's part for `what` in a fresh process, like fastai's: its results."
    cmd = [sys.executable, __file__, '--child', what, '--split-file', split_file, '--split-seed', str(args.split_seed)] + _child_args(args)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f'coursekit run failed: {r.stderr[-3000:]}')
    return json.loads(r.stdout.strip().splitlines()[-1])


def fastai_results(args, what:str, path:Path, split_file:str) -> dict:
    "Run benchmarks/fastai_v2_lesson3.py with `args.fastai_python`: its JSON, or None."
    if not args.fastai_python: return None
    cmd = [args.fastai_python, str(Path(__file__).parent/'fastai_v2_lesson3.py'), '--what', what, '--data', str(path)]
    if split_file: cmd += ['--split', split_file]
    r = subprocess.run(cmd + _child_args(args), capture_output=True, text=True)
    if r.returncode:
        print('fastai v2 run failed:', r.stderr[-2000:]); return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def _epochs(times:list) -> str:
    "Each epoch's seconds (the first two, the median and the last when there are many)."
    if len(times) <= 4: return ' '.join(f'{s:.2f}' for s in times)
    return f'{times[0]:.2f} {times[1]:.2f} ~{np.median(times):.2f} {times[-1]:.2f}'

def _num(v:float) -> str: return f'{v:10.4f}' if abs(v) < 1e4 else f'{v:10.3g}'

def _row(name:str, r:dict, metrics:list) -> str:
    ep, warm = np.mean(r['epoch_seconds']), (min(r['warm_epoch_seconds']) if r['warm_epoch_seconds'] else float('nan'))
    return (f"  {name:14s} {' '.join(_num(r[m]) for m in metrics)} {r['data_seconds']:7.2f} {r['fit_seconds']:7.2f} "
            f"{r['cpu_seconds']:7.2f} {ep:8.2f}   {_epochs(r['epoch_seconds']):22s} {warm:8.2f}")


def report(title:str, metrics:list, ck:dict, fa:dict, fa_name:str, ref:str, notes=()):
    "One task's table: coursekit, fastai (same split), the time ratios, the libraries' own metrics and notes."
    print(f'\n{title}')
    print(f"  {'library':14s} {' '.join(f'{m:>10s}' for m in metrics)} {'data s':>7s} {'fit s':>7s} {'cpu s':>7s} {'s/epoch':>8s}   "
          f"{'epochs s':22s} {'warm s/ep':>8s}")
    print(_row('coursekit', ck, metrics))
    if fa: print(_row(fa_name, fa, metrics))
    if fa:
        ratio = lambda f: f(ck)/f(fa)
        warm = (ratio(lambda r: min(r['warm_epoch_seconds'])) if ck['warm_epoch_seconds'] and fa['warm_epoch_seconds'] else float('nan'))
        print(f"  time ratio coursekit/fastai: fit {ratio(lambda r: r['fit_seconds']):.2f}, "
              f"s/epoch {ratio(lambda r: np.mean(r['epoch_seconds'])):.2f}, warm s/epoch {warm:.2f}")
    for name, r in (('coursekit', ck), (fa_name, fa)):
        if r: print(f"  {name} own metrics, last epoch: {', '.join(f'{k} {v:.4g}' for k, v in r['own'].items())}")
    for n in notes: print(f'  {n}')
    print(f'  issue reference (2-core machine): {ref}')


def report_aug(ck:dict, fa:dict, fa_name:str):
    "The augmentation table: images+masks per second and grid_sample calls per batch, per library and device."
    print(f"\nAugmentation with tfm_y: camvid_tiny's first {ck['bs']} images (3x96x128) + masks (1x96x128), bytes, "
          f"{ck['batches']} batches timed after a warm-up")
    rows = [('coursekit ImageBatchTransform', ck['coursekit']), ('torchvision v2 per item', ck['torchvision'])]
    if fa: rows.insert(1, (f'{fa_name} aug_transforms', fa))
    for dev in ck['coursekit']:
        print(f'  {dev}:')
        for name, r in rows:
            if dev not in r: continue
            c = r[dev]['grid_sample_calls']
            kinds = Counter((tuple(s), m) for s, m in c)
            modes = ', '.join(f"{n} x {'x'.join(map(str, s))} {m}" for (s, m), n in kinds.items())
            print(f"    {name:34s} {r[dev]['per_s']:8.0f} images+masks/s   grid_sample calls per batch: {len(c):3d} ({modes})"
                  f"   out {r[dev]['x'][1]} / {r[dev]['y'][1]}, mask codes kept: {r[dev]['mask_codes_ok']}")
        ck_calls = ck['coursekit'][dev]['grid_sample_calls']
        once = len(ck_calls) == 2 and ck_calls[0][0][0] == ck['bs'] and ck_calls[1][0][:2] == [ck['bs'], 1]
        print(f"    coursekit resamples each image and each mask once: {'yes' if once else 'NO'}")
        if fa: print(f"    speed ratio coursekit/fastai: {ck['coursekit'][dev]['per_s']/fa[dev]['per_s']:.2f}   "
                     f"coursekit/torchvision: {ck['coursekit'][dev]['per_s']/ck['torchvision'][dev]['per_s']:.2f}")
    if fa: print(f"  fastai's batch transforms: {', '.join(fa['tfms'])} (its affine and warp merged into one resampling)")


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--what', nargs='+', default=['planet', 'camvid', 'headpose', 'aug'], choices=list(TASKS))
    p.add_argument('--device', default='cpu', help="cpu (the default, as fastai's figures were taken) or cuda")
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--bs', type=int, default=None, help='batch size for every task (default: planet 64, camvid 8, headpose 16, aug 64)')
    p.add_argument('--epochs', type=int, default=None, help='epochs of every timed fit (default: planet 5, camvid 4, headpose 30)')
    p.add_argument('--warm', type=int, default=1, help='extra one-epoch fits, for the warm epoch time')
    p.add_argument('--aug-batches', type=int, default=20, help='aug: batches timed per library and device')
    p.add_argument('--split-seed', type=int, default=42, help='seed of the random 20%% validation splits')
    p.add_argument('--seed', type=int, default=None, help='set_seed before each learner (default: none, as in the course)')
    p.add_argument('--fastai-python', help='the python of a venv with fastai v2 installed, for the comparison')
    p.add_argument('--quick', action='store_true', help='a smoke test: a few items per task, 3 augmentation batches')
    p.add_argument('--child', choices=list(TASKS), help=argparse.SUPPRESS)   # one part of coursekit's run, JSON out
    p.add_argument('--split-file', help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    defaults.device = torch.device(args.device)
    if args.child:
        path = untar_data(getattr(URLs, TASKS[args.child]['url']))
        if args.child == 'aug': res = coursekit_aug(args, path)
        else: res = coursekit_task(args, args.child, path, json.loads(Path(args.split_file).read_text()))
        print(json.dumps(res))
        sys.exit()
    if args.quick and args.aug_batches == p.get_default('aug_batches'): args.aug_batches = 3
    print(f'torch {torch.__version__}, device {args.device}'
          f"{' (' + torch.cuda.get_device_name() + ')' if torch.device(args.device).type == 'cuda' else ''}, {args.threads} threads, "
          f"{os.cpu_count()} cpus, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; "
          'each library runs each task in a fresh process, coursekit first' + ('; QUICK SMOKE TEST, not a benchmark' if args.quick else ''))
    if args.fastai_python and not Path(args.fastai_python).exists():
        print(f'fastai v2: {args.fastai_python} does not exist: coursekit figures only.'); args.fastai_python = None
    elif not args.fastai_python: print('no --fastai-python: coursekit figures only.')
    with tempfile.TemporaryDirectory() as tmp:
        for what in args.what:
            path = untar_data(getattr(URLs, TASKS[what]['url']))
            split_file = None
            if what != 'aug':
                split_file = str(Path(tmp)/f'{what}_split.json')
                Path(split_file).write_text(json.dumps(make_split(what, path, args)))
            load0 = os.getloadavg()[0]
            ck = coursekit_results(args, what, split_file or '')
            load1 = os.getloadavg()[0]
            fa = fastai_results(args, what, path, split_file)
            fres, fname = (fa['results'][what], f"fastai {fa['version']}") if fa else (None, None)
            print(f"\nload average (1 min): {load0:.2f} before coursekit, {load1:.2f} before fastai, {os.getloadavg()[0]:.2f} after"
                  + (f"   [fastai {fa['version']}, torch {fa['torch']}]" if fa else ''))
            if what == 'aug': report_aug(ck, fres, fname); continue
            size = f"{ck['n_train']} train / {ck['n_valid']} valid (seed {args.split_seed}), {ck['batches']} batches of {ck['bs']}"
            if what == 'planet':
                report(f"planet_sample ({size}), resnet18 from scratch, 64 px, {ck['c']} tags, fit_one_cycle({ck['epochs']}, 1e-2)",
                       ['fbeta', 'acc_thresh'], ck, fres, fname, TASKS[what]['ref'],
                       ['fbeta: thresh 0.2, beta 2, per image then averaged; acc_thresh: thresh 0.2; both from get_preds, same code'])
            elif what == 'camvid':
                report(f"camvid_tiny ({size}), U-Net over resnet18 from scratch, 96x128, {ck['c']} codes, fit_one_cycle({ck['epochs']}, 1e-3)",
                       ['acc_fg'], ck, fres, fname, TASKS[what]['ref'],
                       ["acc_fg: the accuracy of the validation pixels whose target is not 'Void', all of them at once (from get_preds)"])
            else:
                notes = ["mse: validation MSE of the model; mean_mse: of the training set's mean point; coursekit's coordinates "
                         "(-1/1 at the centres of the first/last pixel row/column of 120x160)",
                         f"target err (largest distance of the validation targets from the xml reference): coursekit {ck['target_err']:.2g}"
                         + (f", fastai {fres['target_err']:.2g}; fastai's MSE in its own coordinates {fres['mse_own_coords']:.4f}" if fres else ''),
                         f"loss: coursekit {ck['loss_func']}" + (f", fastai {fres['loss_func']}" if fres else '')]
                report(f"pets head centre ({size}), resnet18 from scratch, 120x160 squished, fit_one_cycle({ck['epochs']}, 1e-2)",
                       ['mse', 'mean_mse'], ck, fres, fname, TASKS[what]['ref'], notes)
