"""Where a ResNet-20 training step's time goes in fundl: per op, forward and backward.

    python benchmarks/bench_resnet_ops.py [--steps 4] [--by-shape 20] [--wall] [--tuned] [--workspace-mb N]

Builds ``fundl.zoo.resnet_cifar(20)`` as ``bench_cnn.py`` does (32x32x3, batch 128,
``SGD(0.1, momentum=0.9)``), runs two warm-up steps, then times ``--steps`` calls of
``train_on_batch`` while every op's ``forward`` and ``backward`` is timed on its own
(patched in this process only). Prints the step time, the total per op kind and direction,
and the largest entries per input shape, each with its minor page faults (first touches of
memory the allocator fetched from the OS: with glibc's default settings every multi-megabyte
temporary faults all its pages again at each step).

Times are this process's CPU time (``time.process_time``) unless ``--wall``: on a machine
shared with other work, CPU time of a single-threaded run is the steadier measure (it does
not count the time other processes hold the core). For that, run the compiled regions on one
thread::

    FUNDL_NUM_THREADS=2 NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/bench_resnet_ops.py

(``FUNDL_NUM_THREADS=2`` keeps the convolutions on their compiled-region path, which a
single fundl thread would not take; ``NUMBA_NUM_THREADS=1`` runs those regions on one
thread.) ``--tuned`` applies ``fl.config.tune_process()`` first (the allocator keeps freed
memory: no page faults for the step's fresh arrays). The ratio to PyTorch comes from
``bench_cnn.py``; this script says where fundl's own time goes.
"""
import argparse
import collections
import os
import resource
import sys
import time

import numpy as np

os.environ.setdefault("FUNDL_COMPILE", "foreground")  # time compiled kernels, not references


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _faults():
    """This process's minor page faults so far (first touches of freshly mapped memory)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _patch(clock, totals, counts, faults):
    """Wrap every op's forward and backward with a timer and a page-fault counter (keyed by
    op, direction, shape)."""
    import fundl.ops  # noqa: F401 - registers the op classes
    from fundl.autograd import Function

    def wrap(cls, name):
        fn = cls.__dict__.get(name)
        if fn is None:
            return

        def timed(self, *args, **kwargs):
            f0 = _faults()
            start = clock()
            out = fn(self, *args, **kwargs)
            end = clock()
            shape = next((a.shape for a in args if hasattr(a, "shape")), None)
            key = (cls.__name__, name, shape)
            totals[key] += end - start
            faults[key] += _faults() - f0
            counts[key] += 1
            return out

        setattr(cls, name, timed)

    for cls in set(_subclasses(Function)):
        wrap(cls, "forward")
        wrap(cls, "backward")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--by-shape", type=int, default=20, help="entries per shape shown")
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    parser.add_argument("--tuned", action="store_true", help="fl.config.tune_process() first")
    parser.add_argument("--workspace-mb", type=int, default=None,
                        help="set the size cap of fundl.runtime's Workspace (MB) first")
    args = parser.parse_args()
    import fundl as fl

    if args.tuned:
        fl.config.tune_process()
    if args.workspace_mb is not None:
        fl.runtime.state().workspace.max_bytes = args.workspace_mb << 20
    clock = time.perf_counter if args.wall else time.process_time
    totals, counts, faults = (collections.defaultdict(float), collections.Counter(),
                              collections.Counter())
    fl.manual_seed(0)
    model = fl.zoo.resnet_cifar(20, input_shape=(32, 32, 3), classes=10)
    model.compile(optimizer=fl.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((128, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    for _ in range(2):
        model.train_on_batch(x, y)
    steps = []
    f0 = _faults()
    for _ in range(args.steps):  # the step without the per-op timers first
        start = clock()
        model.train_on_batch(x, y)
        steps.append(clock() - start)
    step_faults = (_faults() - f0) / args.steps
    _patch(clock, totals, counts, faults)
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    n = args.steps
    kind = "wall" if args.wall else "CPU"
    print(f"ResNet-20 step ({kind} time, {n} steps): min {min(steps) * 1e3:.1f} ms, median "
          f"{sorted(steps)[n // 2] * 1e3:.1f} ms; inside ops {sum(totals.values()) / n * 1e3:.1f}"
          f" ms (timed run); {step_faults:.0f} page faults per step, "
          f"{sum(faults.values()) / n:.0f} inside ops; peak resident memory "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10} MB, of which fundl's "
          f"Workspace pools {fl.runtime.state().workspace.nbytes >> 20} MB")
    by_op, by_op_faults = collections.defaultdict(float), collections.Counter()
    for (op, direction, _), t in totals.items():
        by_op[(op, direction)] += t
    for (op, direction, _), f in faults.items():
        by_op_faults[(op, direction)] += f
    print(f"  {'op':<32s} {'ms':>8s} {'faults':>8s}")
    for (op, direction), t in sorted(by_op.items(), key=lambda kv: -kv[1]):
        if t / n >= 5e-5:
            print(f"  {op + '.' + direction:<32s} {t / n * 1e3:8.2f} "
                  f"{by_op_faults[(op, direction)] / n:8.0f}")
    print("by input shape:")
    for key, t in sorted(totals.items(), key=lambda kv: -kv[1])[:args.by_shape]:
        op, direction, shape = key
        print(f"  {op + '.' + direction:<32s} {str(shape):<22s} x{counts[key] // n:<3d}"
              f" {t / n * 1e3:8.2f} ms {faults[key] // n:7d} faults")
    return 0


if __name__ == "__main__":
    sys.exit(main())
