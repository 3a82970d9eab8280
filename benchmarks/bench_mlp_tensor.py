"""A raw-tensor MLP training step (no layers, no model): fundl autograd vs PyTorch eager.

    python benchmarks/bench_mlp_tensor.py

784-256-ReLU-128-ReLU-10, batch 128, float32, softmax cross-entropy, plain SGD (lr 0.1),
written the same way in both: matmul + bias, relu, fused softmax cross-entropy, backward,
update. Both start from the same weights; their losses are checked to agree first, then each is
timed in a process of its own (see _common.run_isolated).
"""
# _common first: it sets the BLAS thread counts, which NumPy's OpenBLAS reads when it loads
from _common import import_torch, report, run_isolated

import numpy as np


SIZES = (784, 256, 128, 10)
BATCH = 128
LR = 0.1


def init_weights(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        limit = np.sqrt(6 / (fan_in + fan_out))
        out.append(rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32))
        out.append(np.zeros(fan_out, np.float32))
    return out


def data():
    rng = np.random.default_rng(1)
    return (rng.standard_normal((BATCH, SIZES[0])).astype(np.float32),
            rng.integers(0, SIZES[-1], BATCH))


def fundl_step():
    import fundl as fl

    x, y = data()
    fw = [fl.tensor(w, requires_grad=True) for w in init_weights()]
    fx = fl.tensor(x)

    def step():
        h = fx
        for i in range(0, len(fw) - 2, 2):
            h = (h @ fw[i] + fw[i + 1]).relu()
        logits = h @ fw[-2] + fw[-1]
        loss = fl.softmax_cross_entropy(logits, y).mean()
        for w in fw:
            w.grad = None
        loss.backward()
        for w in fw:
            w.data -= LR * w.grad
        return loss.item()

    return step


def torch_step():
    torch = import_torch()
    x, y = data()
    tw = [torch.tensor(w, requires_grad=True) for w in init_weights()]
    tx, ty = torch.tensor(x), torch.tensor(y)

    def step():
        h = tx
        for i in range(0, len(tw) - 2, 2):
            h = torch.relu(h @ tw[i] + tw[i + 1])
        logits = h @ tw[-2] + tw[-1]
        loss = torch.nn.functional.cross_entropy(logits, ty)
        for w in tw:
            w.grad = None
        loss.backward()
        with torch.no_grad():
            for w in tw:
                w -= LR * w.grad
        return loss.item()

    return step


def main():
    builders = {"fundl": fundl_step}
    if import_torch() is not None:
        builders["torch"] = torch_step
        f, t = fundl_step(), torch_step()
        for _ in range(5):  # the same computation, step by step
            a, b = f(), t()
            assert abs(a - b) < 1e-4 * max(1.0, abs(b)), (a, b)
    times, peaks = run_isolated(builders, number=20, rounds=7)
    report("raw-tensor MLP training step (784-256-128-10, batch 128)", times,
           baseline="torch" if "torch" in times else "fundl", unit="ms", peaks=peaks)


if __name__ == "__main__":
    main()
