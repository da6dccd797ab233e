"""What the coursekit benchmarks share: waiting for the GPU before reading the clock, and an epoch timer."""
import time

import torch

from coursekit.callback import Callback


def sync(device):
    "Wait for the GPU's queued work, so that a clock read after it counts it."
    if torch.device(device).type == 'cuda': torch.cuda.synchronize()


class EpochTimer(Callback):
    "Seconds of each epoch (training and validation)."
    order = -100
    def __init__(self, device): self.device, self.times = device, []
    def before_epoch(self): self.t = time.perf_counter()
    def after_epoch(self): sync(self.device); self.times.append(time.perf_counter() - self.t)
