"""The ``fundl`` command: ``fundl --help``, ``fundl --version``, ``fundl demo``."""
from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    """Train a tiny network with raw tensors and autograd, printing what happens."""
    import numpy as np

    import fundl as fl

    fl.manual_seed(0)
    rng = np.random.default_rng(0)
    # XOR-like data: the label is whether x0 and x1 have the same sign.
    x = rng.uniform(-1, 1, size=(256, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    w1 = fl.randn(2, 16, requires_grad=True)
    b1 = fl.zeros(16, requires_grad=True)
    w2 = fl.randn(16, 2, requires_grad=True)
    b2 = fl.zeros(2, requires_grad=True)
    params = [w1, b1, w2, b2]
    print("fundl demo: a 2-16-2 network learns XOR with tensors, autograd and plain SGD")
    for epoch in range(301):
        logits = (fl.tensor(x) @ w1 + b1).tanh() @ w2 + b2
        loss = fl.softmax_cross_entropy(logits, y).mean()
        for p in params:
            p.grad = None
        loss.backward()
        for p in params:
            p.data -= 0.5 * p.grad
        if epoch % 50 == 0:
            acc = float((logits.data.argmax(axis=1) == y).mean())
            print(f"  epoch {epoch:3d}  loss {loss.item():.4f}  accuracy {acc:.3f}")
    print(f"final training accuracy {acc:.3f}")
    return 0


def main(argv=None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="fundl", description="fundl: deep learning from first principles, fast enough to use.")
    parser.add_argument("--version", action="version", version=f"fundl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    demo = sub.add_parser("demo", help="train a model end to end and report its accuracy")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
