"""A raw-tensor MLP training step (no layers, no model): fundl autograd vs PyTorch eager.

    python benchmarks/bench_mlp_tensor.py

784-256-ReLU-128-ReLU-10, batch 128, float32, softmax cross-entropy, plain SGD (lr 0.1),
written the same way in both: matmul + bias, relu, fused softmax cross-entropy, backward,
update. The two start from the same weights and their losses are checked to agree.
"""
import numpy as np

from _common import compare, import_torch, report

import fundl as fl

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


def main():
    torch = import_torch()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], BATCH)

    fw = [fl.tensor(w, requires_grad=True) for w in init_weights()]
    fx = fl.tensor(x)

    def fl_step():
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

    cases = {"fundl": fl_step}
    if torch is not None:
        tw = [torch.tensor(w, requires_grad=True) for w in init_weights()]
        tx, ty = torch.tensor(x), torch.tensor(y)

        def t_step():
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

        losses = [(fl_step(), t_step()) for _ in range(5)]
        for a, b in losses:
            assert abs(a - b) < 1e-4 * max(1, abs(b)), losses
        cases["torch"] = t_step
    times = compare(cases, number=20, rounds=9)
    report("raw-tensor MLP training step (784-256-128-10, batch 128)", times,
           baseline="torch" if torch is not None else "fundl", unit="ms")


if __name__ == "__main__":
    main()
