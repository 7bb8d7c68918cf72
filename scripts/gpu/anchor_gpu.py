#!/usr/bin/env python3
"""SpikingJelly anchor on the GPU: the seed's CSNN (libcsnn's fer-csnn
preset) written against SpikingJelly's activation_based API, timed in
training and inference on CUDA, for run_gpu_checks.sh to set beside
`csnn bench --device cuda`.

No SpikingJelly code lives here: the package is imported from PYTHONPATH
(scripts/gpu/fetch_sj.sh copies SpikingJelly master's spikingjelly/ folder
into .gpu-deps/, and run_gpu_checks.sh sets PYTHONPATH=.gpu-deps). The model
is the one of shared/anchors/csnn_model.py (the CPU anchor): input 1x48x48,
T = 4, 7 classes;
  conv 128 k3 p1 -> BN (single step, once per image, repeated over T),
  IF -> maxpool 2 -> conv 128 k3 p1 -> BN -> IF -> maxpool 2 -> flatten ->
  dropout 0.5 -> linear 1152 -> LIF(tau 2) -> dropout 0.5 -> linear 128 ->
  LIF -> linear 7 -> LIF; output = mean over T of the last spikes;
  IF/LIF: v_threshold 1, v_reset 0, ATan surrogate, multi-step.
Here every neuron runs SpikingJelly's chosen backend (--backend torch, cupy
or triton): one process per backend, so that one failing to build its
kernels leaves the others' figures.

  --mode train : forward + MSE(rates, one_hot) + backward + Adam(lr 1e-3)
                 step + reset_net (as csnn_trainer_step: MSE on firing rates)
  --mode infer : eval(), inference_mode forward + reset_net

Inputs torch.rand on the GPU (4 batches cycled, as the CPU anchor and
`csnn bench` do), labels torch.randint. Timing: torch.cuda.synchronize()
around each step, wall clock; median and minimum over --iters steps after
--warmup steps. Prints one JSON line per configuration on stdout:
  {"impl": "spikingjelly", "backend", "mode", "batch", "T", "samples_per_s",
   "ms_per_step", "ms_min", "step_ms": [...], "peak_mem_mb", "last_value",
   "device", "torch", "cupy", "spikingjelly", "tf32_conv", "tf32_matmul",
   "cudnn_benchmark"}
or {"impl": "spikingjelly", "backend", "mode", "batch", "error": "..."}.
PyTorch's defaults are kept (cuDNN may use TF32 for convolutions, matmul
does not; cudnn.benchmark off); the JSON says which, since libcsnn uses
neither TF32 nor autotuning.
"""
import argparse
import json
import os
import statistics
import sys
import time
import traceback


def packaging_shim():
    """SpikingJelly's CuPy and Triton backends import `packaging`; a GPU
    machine without it can use the copy pip vendors."""
    try:
        import packaging.version  # noqa: F401
    except ImportError:
        try:
            import pip._vendor.packaging as pk
            import pip._vendor.packaging.version as pkv
            sys.modules['packaging'] = pk
            sys.modules['packaging.version'] = pkv
        except ImportError:
            pass


def build_model(backend, T, channels=128, hw=48, classes=7, fc_hidden=1152, fc_hidden2=128,
                p_drop=0.5):
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    def if_node():
        return neuron.IFNode(v_threshold=1.0, v_reset=0.0, surrogate_function=surrogate.ATan(),
                             step_mode='m', backend=backend)

    def lif_node():
        return neuron.LIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0,
                              surrogate_function=surrogate.ATan(), step_mode='m', backend=backend)

    class CSNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.T = T
            feat = channels * (hw // 4) * (hw // 4)
            # block 1: single step, once per image
            self.conv1 = layer.Conv2d(1, channels, 3, padding=1, bias=True)
            self.bn1 = layer.BatchNorm2d(channels)
            # blocks 2 and 3: multi-step
            self.block = nn.Sequential(
                if_node(), layer.MaxPool2d(2),
                layer.Conv2d(channels, channels, 3, padding=1, bias=True),
                layer.BatchNorm2d(channels), if_node(), layer.MaxPool2d(2),
                layer.Flatten(), layer.Dropout(p_drop), layer.Linear(feat, fc_hidden), lif_node(),
                layer.Dropout(p_drop), layer.Linear(fc_hidden, fc_hidden2), lif_node(),
                layer.Linear(fc_hidden2, classes), lif_node())
            functional.set_step_mode(self.block, 'm')

        def forward(self, x):
            x = self.bn1(self.conv1(x))                     # [N, C, H, W], once
            x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)  # [T, N, C, H, W]
            return self.block(x).mean(0)                    # firing rates [N, classes]

    return CSNN(), functional


def measure(model, functional, mode, batch, warmup, iters, device, classes=7):
    import torch
    import torch.nn.functional as F

    nbuf = 4
    xs = [torch.rand(batch, 1, 48, 48, device=device) for _ in range(nbuf)]
    ys = [F.one_hot(torch.randint(0, classes, (batch,), device=device), classes).float()
          for _ in range(nbuf)]
    cuda = str(device).startswith('cuda')
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if mode == 'train':
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(i):
            out = model(xs[i % nbuf])
            loss = F.mse_loss(out, ys[i % nbuf])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            functional.reset_net(model)
            return loss
    else:
        model.eval()

        def step(i):
            with torch.inference_mode():
                out = model(xs[i % nbuf])
            functional.reset_net(model)
            return out.sum()

    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, last = [], None
    for i in range(warmup + iters):
        sync()
        t0 = time.perf_counter()
        v = step(i)
        sync()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
            last = float(v)
    med = statistics.median(times)
    return {'samples_per_s': batch / med, 'ms_per_step': med * 1e3, 'ms_min': min(times) * 1e3,
            'step_ms': [round(t * 1e3, 4) for t in times],
            'peak_mem_mb': torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            'last_value': last}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--backend', default='torch', help='neuron backend: torch, cupy or triton')
    ap.add_argument('--configs', default='train:16,train:256,infer:16,infer:256',
                    help='comma-separated MODE:BATCH')
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--iters', type=int, default=10)
    ap.add_argument('--iters-large', type=int, default=None,
                    help='timed steps for batches >= 128 (default: --iters)')
    ap.add_argument('--T', type=int, default=4)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--device', default='cuda', help='cuda (or cpu, for a smoke test)')
    ap.add_argument('--budget-s', type=float, default=0.0,
                    help='stop starting new configurations after this many seconds (0: none)')
    args = ap.parse_args()

    t_start = time.perf_counter()
    packaging_shim()
    import torch
    torch.manual_seed(args.seed)
    info = {'impl': 'spikingjelly', 'backend': args.backend, 'T': args.T,
            'torch': torch.__version__}
    try:
        import cupy
        info['cupy'] = cupy.__version__
    except Exception:  # noqa: BLE001 - absent or broken: say so, go on
        info['cupy'] = None
    configs = []
    for c in args.configs.split(','):
        mode, b = c.split(':')
        configs.append((mode, int(b)))
    try:
        import spikingjelly
        info['spikingjelly'] = os.path.dirname(spikingjelly.__file__)
        model, functional = build_model(args.backend, args.T)
        model = model.to(args.device)
        info['device'] = (torch.cuda.get_device_name(0) if args.device.startswith('cuda')
                          else args.device)
    except Exception as e:  # noqa: BLE001
        for mode, b in configs:
            print(json.dumps(dict(info, mode=mode, batch=b,
                                  error='%s: %s' % (type(e).__name__, e))), flush=True)
        traceback.print_exc()
        return 1
    info['tf32_conv'] = bool(torch.backends.cudnn.allow_tf32)
    info['tf32_matmul'] = bool(torch.backends.cuda.matmul.allow_tf32)
    info['cudnn_benchmark'] = bool(torch.backends.cudnn.benchmark)
    rc = 0
    for mode, b in configs:
        res = dict(info, mode=mode, batch=b)
        if args.budget_s > 0 and time.perf_counter() - t_start > args.budget_s:
            res['error'] = 'skipped: time budget of %gs spent' % args.budget_s
            print(json.dumps(res), flush=True)
            continue
        iters = args.iters_large if (args.iters_large and b >= 128) else args.iters
        try:
            res.update(measure(model, functional, mode, b, args.warmup, iters, args.device))
            res['warmup'], res['iters'] = args.warmup, iters
        except Exception as e:  # noqa: BLE001
            res['error'] = '%s: %s' % (type(e).__name__, e)
            traceback.print_exc()
            rc = 1
        print(json.dumps(res), flush=True)
        if args.device.startswith('cuda'):
            torch.cuda.empty_cache()
    return rc


if __name__ == '__main__':
    sys.exit(main())
