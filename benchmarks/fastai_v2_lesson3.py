"""fastai v2 baseline for the lesson 3 benchmarks, for comparison only (run with a separate venv that has fastai).

    <fastai venv>/bin/python benchmarks/fastai_v2_lesson3.py --what planet --data data/planet_sample --split split.json --threads 2

`--data` is the extracted dataset folder (fastai's own `untar_data` is not used: it would try the internet);
`--split` a JSON file {"valid": [names], "keep": [names] or null} that benchmarks/bench_lesson3.py writes, so
that both libraries validate on the same items (names: planet's image_name, the image file name for the
others; "keep", when given, is the subset to use at all, for a quick smoke test). Everything runs on the
CPU (or `--device`), with no workers, no progress bar and no results table; only the fit calls are timed.
Models are built from scratch (`pretrained=False`: nothing is downloaded), so fastai adds no Normalize
itself: the recipes add `Normalize.from_stats(*imagenet_stats)`, as coursekit's `.normalize(imagenet_stats)`.

  planet    planet_sample, DataBlock(ImageBlock, MultiCategoryBlock) from labels.csv (tags split at ' '),
            Resize(64), aug_transforms(flip_vert=True, max_lighting=0.1, max_zoom=1.05, max_warp=0.), bs 64,
            vision_learner(resnet18, pretrained=False, metrics=[accuracy_multi(thresh=0.2),
            FBetaMulti(2, average='samples', thresh=0.2)]), fit_one_cycle(5, 1e-2)
  camvid    camvid_tiny, DataBlock(ImageBlock, MaskBlock(codes)), the images as they are (96x128),
            aug_transforms(), bs 8, unet_learner(resnet18, pretrained=False), fit_one_cycle(4, 1e-3)
  headpose  the pets sample's 237 images that have a head box (annotations/xmls), DataBlock(ImageBlock, PointBlock),
            target the box centre, Resize((120,160), method='squish'), aug_transforms(), bs 16,
            vision_learner(resnet18, pretrained=False) (MSELossFlat from PointBlock), fit_one_cycle(30, 1e-2)
  aug       the batch augmentation alone: [IntToFloatTensor(), *aug_transforms()] (the training pipeline's batch
            transforms) on a TensorImage (64, 3, 96, 128) of bytes + TensorMask (64, 96, 128), camvid_tiny's first
            64 images and masks; images+masks per second (CPU, and CUDA when there is a GPU), and how many
            F.grid_sample calls one batch makes

Metrics, from get_preds over the whole validation set, computed the same way as in bench_lesson3.py:
planet accuracy_thresh (0.2) and fbeta (thresh 0.2, beta 2, per image then averaged, as coursekit's `fbeta`);
camvid the accuracy of the pixels whose target is not 'Void'; headpose the MSE in coursekit's coordinates
((row, column), -1 and 1 at the centres of the first and last pixel row/column of the 120x160 image): fastai's
points are (x, y) with -1 and 1 at the image's edges, so its predictions and targets are converted (the
target given to fastai is the box centre + 0.5 pixel, fastai's continuous coordinate of that pixel centre, so
that the converted targets are exactly coursekit's: `target_err` says how far they are from the reference).
The libraries' own metrics of the last epoch (recorder) are reported too, as `own`.

For each: the metric(s), the seconds of building the DataLoaders, the seconds (and process CPU seconds) of
the timed fit call, the seconds of each epoch (a callback's clock, before_epoch to after_epoch), and
`--warm` more one-epoch fits on the same learner (their times only). Prints one JSON line.
"""
import argparse, contextlib, json, time, warnings
from lesson3_targets import planet_metrics, head_ctr, ref_point      # benchmarks/lesson3_targets.py

TASKS = {'planet': dict(bs=64, epochs=5, lr=1e-2), 'camvid': dict(bs=8, epochs=4, lr=1e-3),
         'headpose': dict(bs=16, epochs=30, lr=1e-2), 'aug': dict(bs=64)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--what', required=True, choices=list(TASKS))
    p.add_argument('--data', required=True, help='the extracted dataset folder (camvid_tiny for aug)')
    p.add_argument('--split', help='JSON file {"valid": [names], "keep": [names] or null}')
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    p.add_argument('--device', default='cpu')
    p.add_argument('--bs', type=int, default=None, help='batch size (default: the task\'s)')
    p.add_argument('--epochs', type=int, default=None, help='epochs of the timed fit (default: the task\'s)')
    p.add_argument('--seed', type=int, default=None, help='set_seed before each learner (default: none, as in the course)')
    p.add_argument('--warm', type=int, default=1, help='extra one-epoch fits timed after the measured fit')
    p.add_argument('--aug-batches', type=int, default=20, help='aug: batches timed per device')
    args = p.parse_args()
    task = TASKS[args.what]
    bs, epochs, lr = args.bs or task['bs'], args.epochs or task.get('epochs'), task.get('lr')

    # fastai/torch import emits e.g. "torch.jit.script is deprecated" FutureWarnings: keep stderr quiet
    warnings.simplefilter('ignore')
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    import fastai
    from fastai.vision.all import (DataBlock, ImageBlock, MultiCategoryBlock, MaskBlock, PointBlock, ColReader, FuncSplitter, IndexSplitter, Resize,
                                   ResizeMethod, aug_transforms, Normalize, imagenet_stats, vision_learner, unet_learner, resnet18,
                                   accuracy_multi, FBetaMulti, Callback, Path, set_seed, get_image_files, partial, IntToFloatTensor,
                                   TensorImage, TensorMask, Pipeline)
    from PIL import Image
    device = torch.device(args.device)
    path = Path(args.data)
    split = json.loads(Path(args.split).read_text()) if args.split else {'valid': [], 'keep': None}
    valid, keep = set(split['valid']), (set(split['keep']) if split.get('keep') is not None else None)
    sync = lambda: torch.cuda.synchronize() if device.type == 'cuda' else None

    class EpochTimer(Callback):
        "Seconds of each epoch, training and validation."
        order = -100
        def before_fit(self): self.times = []
        def before_epoch(self): self.t = time.perf_counter()
        def after_epoch(self): sync(); self.times.append(time.perf_counter() - self.t)

    def run(learn):
        "Time fit_one_cycle(epochs, lr), then `--warm` one-epoch fits; the predictions after the timed fit."
        timer = EpochTimer()
        with contextlib.ExitStack() as stack:  # no progress bar, no results table
            if hasattr(learn, 'no_bar'): stack.enter_context(learn.no_bar())
            if hasattr(learn, 'no_logging'): stack.enter_context(learn.no_logging())
            sync(); t, c = time.perf_counter(), time.process_time()
            learn.fit_one_cycle(epochs, lr, cbs=timer)
            sync(); fit_seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - c
            epoch_seconds = list(timer.times)
            names = learn.recorder.metric_names[1:-1]          # train_loss, valid_loss, metrics... (without epoch and time)
            own = {n: round(float(v), 4) for n, v in zip(names, learn.recorder.values[-1])}
            preds, targs = learn.get_preds()
            warm = []
            for _ in range(args.warm):
                sync(); t = time.perf_counter()
                learn.fit_one_cycle(1, lr)
                sync(); warm.append(time.perf_counter() - t)
        return preds, targs, {'fit_seconds': round(fit_seconds, 3), 'cpu_seconds': round(cpu_seconds, 3), 'own': own,
                              'epoch_seconds': [round(s, 3) for s in epoch_seconds], 'warm_epoch_seconds': [round(s, 3) for s in warm]}

    def sizes(dls): return {'n_train': len(dls.train_ds), 'n_valid': len(dls.valid_ds), 'batches': len(dls.train), 'bs': bs, 'epochs': epochs}
    stats_norm = Normalize.from_stats(*imagenet_stats)
    res = {}
    if args.what == 'planet':
        import pandas as pd
        df = pd.read_csv(path/'labels.csv')
        if keep is not None: df = df[df.image_name.isin(keep)].reset_index(drop=True)
        t = time.perf_counter()
        dblock = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_x=ColReader(0, pref=path/'train', suff='.jpg'),
                           get_y=ColReader(1, label_delim=' '), splitter=IndexSplitter(np.flatnonzero(df.image_name.isin(valid)).tolist()),
                           item_tfms=Resize(64),
                           batch_tfms=[*aug_transforms(flip_vert=True, max_lighting=0.1, max_zoom=1.05, max_warp=0.), stats_norm])
        dls = dblock.dataloaders(df, bs=bs, num_workers=0, device=device)
        data_seconds = time.perf_counter() - t
        if args.seed is not None: set_seed(args.seed)
        learn = vision_learner(dls, resnet18, pretrained=False,
                               metrics=[partial(accuracy_multi, thresh=0.2), FBetaMulti(2, average='samples', thresh=0.2)])
        preds, targs, r = run(learn)
        res['planet'] = {**planet_metrics(preds, targs), **r, 'data_seconds': round(data_seconds, 3), **sizes(dls),
                         'c': len(dls.vocab)}
    elif args.what == 'camvid':
        codes = np.loadtxt(path/'codes.txt', dtype=str)
        void = list(codes).index('Void')
        get_y = lambda o: path/'labels'/f'{o.stem}_P{o.suffix}'
        t = time.perf_counter()
        dblock = DataBlock(blocks=(ImageBlock, MaskBlock(codes)),
                           get_items=lambda p: [f for f in get_image_files(p) if keep is None or f.name in keep], get_y=get_y,
                           splitter=FuncSplitter(lambda o: o.name in valid), batch_tfms=[*aug_transforms(), stats_norm])
        dls = dblock.dataloaders(path/'images', bs=bs, num_workers=0, device=device)
        data_seconds = time.perf_counter() - t
        if args.seed is not None: set_seed(args.seed)
        learn = unet_learner(dls, resnet18, pretrained=False)
        preds, targs, r = run(learn)
        pred, targ = preds.argmax(1), targs.view(preds.shape[0], *preds.shape[2:])
        fg = targ != void
        res['camvid'] = {'acc_fg': float((pred[fg] == targ[fg]).float().mean()), **r, 'data_seconds': round(data_seconds, 3),
                         **sizes(dls), 'c': len(codes), 'shape': list(preds.shape[1:])}
    elif args.what == 'headpose':
        xmls = path/'annotations'/'xmls'
        def head_xy(f):     # fastai's points: (x, y), continuous (pixel i covers [i, i+1]): the centre of pixel (r, c) is (c+0.5, r+0.5)
            r_, c_ = head_ctr(xmls/f'{f.stem}.xml')
            return torch.tensor([[c_ + 0.5, r_ + 0.5]])
        items = lambda p: [f for f in sorted(get_image_files(p)) if (xmls/f'{f.stem}.xml').exists() and (keep is None or f.name in keep)]
        t = time.perf_counter()
        dblock = DataBlock(blocks=(ImageBlock, PointBlock), get_items=items, get_y=head_xy, splitter=FuncSplitter(lambda o: o.name in valid),
                           item_tfms=Resize((120, 160), method=ResizeMethod.Squish), batch_tfms=[*aug_transforms(), stats_norm])
        dls = dblock.dataloaders(path/'images', bs=bs, num_workers=0, device=device)
        data_seconds = time.perf_counter() - t
        if args.seed is not None: set_seed(args.seed)
        learn = vision_learner(dls, resnet18, pretrained=False)
        preds, targs, r = run(learn)
        # fastai's (x, y) in [-1, 1] over the edges of the 120x160 image -> pixels -> coursekit's (row, column) in [-1, 1] over pixel centres
        wh = torch.tensor([160., 120.])
        to_ck = lambda v: (((v.reshape(-1, 2) + 1)/2*wh - 0.5)/((wh - 1)/2) - 1).flip(1)
        p_ck, t_ck = to_ck(preds.float()), to_ck(targs.float())
        ref = lambda fs: torch.tensor([ref_point(Image.open(f).size[::-1], head_ctr(xmls/f'{f.stem}.xml')) for f in fs])
        mean_pt = ref(dls.train_ds.items).mean(0)
        res['headpose'] = {'mse': float(((p_ck - t_ck)**2).mean()), 'mean_mse': float(((t_ck - mean_pt)**2).mean()),
                           'mse_own_coords': float(((preds.reshape(-1, 2) - targs.reshape(-1, 2).float())**2).mean()),
                           'target_err': float((t_ck - ref(dls.valid_ds.items)).abs().max()), 'loss_func': repr(learn.loss_func),
                           **r, 'data_seconds': round(data_seconds, 3), **sizes(dls)}
    else:   # aug
        fs = sorted((path/'images').glob('*.png'))[:bs]
        x0 = torch.stack([torch.from_numpy(np.array(Image.open(f).convert('RGB'))).permute(2, 0, 1) for f in fs])
        y0 = torch.stack([torch.from_numpy(np.array(Image.open(path/'labels'/f'{f.stem}_P.png'))) for f in fs])
        pipe = Pipeline([IntToFloatTensor(), *aug_transforms()], split_idx=0)
        import fastai.vision.augment as augment
        out = {'tfms': [type(t).__name__ for t in pipe.fs]}
        for dev in ['cpu'] + (['cuda'] if torch.cuda.is_available() else []):
            b = (TensorImage(x0.to(dev)), TensorMask(y0.to(dev)))
            xo, yo = pipe(b)                                          # warm-up, and the checks
            calls, F = [], augment.F
            class Counting:     # torch.nn.functional as fastai's augment module sees it, counting grid_sample's calls
                def __getattr__(self, name): return getattr(F, name)
                def grid_sample(self, inp, grid, *a, **k):
                    calls.append([list(inp.shape), k.get('mode', 'bilinear')]); return F.grid_sample(inp, grid, *a, **k)
            augment.F = Counting()
            try: pipe(b)
            finally: augment.F = F
            if dev == 'cuda': torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(args.aug_batches): xo, yo = pipe(b)
            if dev == 'cuda': torch.cuda.synchronize()
            out[dev] = {'per_s': round(args.aug_batches*len(x0)/(time.perf_counter() - t), 1), 'grid_sample_calls': calls,
                        'x': [list(xo.shape), str(xo.dtype)], 'y': [list(yo.shape), str(yo.dtype)],
                        'mask_codes_ok': bool(set(yo.unique().tolist()) <= set(y0.unique().tolist()))}
        res['aug'] = {**out, 'bs': len(x0), 'batches': args.aug_batches}
    print(json.dumps({'library': 'fastai', 'version': fastai.__version__, 'torch': torch.__version__, 'threads': args.threads,
                      'device': str(device), 'results': res}))


if __name__ == '__main__':
    main()
