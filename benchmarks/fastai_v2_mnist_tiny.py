"""fastai v2 baseline on MNIST_TINY, for comparison only (run with a separate venv that has fastai).

    /tmp/venv_fastai/bin/python benchmarks/fastai_v2_mnist_tiny.py --data /tmp/mnist_tiny_bench/mnist_tiny --threads 2

`--data` is the extracted mnist_tiny folder (train/3, train/7, valid/3, valid/7, test/, labels.csv).
Builds `ImageDataLoaders.from_folder` (bs 64, no augmentation, items stay 28x28, no workers), a
randomly initialised resnet18 (`pretrained=False`: nothing is downloaded), and times only
`fit_one_cycle(3, 1e-2)` on the CPU. Prints one JSON line.
"""
import argparse, contextlib, json, time, warnings


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', required=True, help='extracted mnist_tiny folder')
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--lr', type=float, default=1e-2)
    args = p.parse_args()

    # fastai/torch import emits e.g. "torch.jit.script is deprecated" FutureWarnings: keep stderr quiet
    warnings.simplefilter('ignore')
    import torch
    torch.set_num_threads(args.threads)
    import fastai
    from fastai.vision.all import ImageDataLoaders, Path, accuracy, resnet18, set_seed
    try: from fastai.vision.all import vision_learner as make_learner
    except ImportError: from fastai.vision.all import cnn_learner as make_learner

    set_seed(42)
    dls = ImageDataLoaders.from_folder(Path(args.data), train='train', valid='valid', bs=64,
                                       num_workers=0, device=torch.device('cpu'))
    learn = make_learner(dls, resnet18, pretrained=False, metrics=accuracy)

    with contextlib.ExitStack() as stack:  # no progress bar, no results table
        if hasattr(learn, 'no_bar'): stack.enter_context(learn.no_bar())
        if hasattr(learn, 'no_logging'): stack.enter_context(learn.no_logging())
        t = time.perf_counter()
        learn.fit_one_cycle(args.epochs, args.lr)
        fit_seconds = time.perf_counter() - t

    # recorder.values: one row per epoch, [train_loss, valid_loss, accuracy]
    acc = float(learn.recorder.values[-1][learn.recorder.metric_names[1:-1].index('accuracy')])
    print(json.dumps({'library': 'fastai', 'version': fastai.__version__, 'torch': torch.__version__,
                      'accuracy': round(acc, 4), 'fit_seconds': round(fit_seconds, 3),
                      'epochs': args.epochs, 'threads': args.threads,
                      'n_train': len(dls.train_ds), 'n_valid': len(dls.valid_ds),
                      'vocab': list(map(str, dls.vocab))}))


if __name__ == '__main__':
    main()
