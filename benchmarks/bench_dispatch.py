"""Per-op dispatch overhead: tiny tensors, where framework overhead is all there is.

    python benchmarks/bench_dispatch.py

Cases (10-element float32 tensors): one op forward; a 5-op graph forward; the 5-op graph
forward + backward — each for fundl and PyTorch eager, interleaved in one process.
"""
# _common first: it sets the BLAS thread counts, which NumPy's OpenBLAS reads when it loads
from _common import compare, import_torch, report

import numpy as np


import fundl as fl


def main():
    torch = import_torch()
    a = np.random.default_rng(0).standard_normal(10).astype(np.float32)
    b = np.random.default_rng(1).standard_normal(10).astype(np.float32)
    fx, fy = fl.tensor(a, requires_grad=True), fl.tensor(b, requires_grad=True)

    def graph(x, y):  # 5 ops: mul, add, tanh, exp, sum
        return ((x * y + x).tanh().exp()).sum()

    def fl_fwd_bwd():
        fx.grad = fy.grad = None
        graph(fx, fy).backward()

    cases_op = {"fundl x*y": lambda: fx * fy}
    cases_fwd = {"fundl 5-op forward": lambda: graph(fx, fy)}
    cases_bwd = {"fundl 5-op fwd+bwd": fl_fwd_bwd}
    if torch is not None:
        tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)

        def t_fwd_bwd():
            tx.grad = ty.grad = None
            graph(tx, ty).backward()

        cases_op["torch x*y"] = lambda: tx * ty
        cases_fwd["torch 5-op forward"] = lambda: graph(tx, ty)
        cases_bwd["torch 5-op fwd+bwd"] = t_fwd_bwd
    # check both compute the same thing before timing it
    if torch is not None:
        fl_fwd_bwd(), t_fwd_bwd()
        np.testing.assert_allclose(fx.grad, tx.grad.numpy(), rtol=1e-5)
    for title, cases in [("one op forward", cases_op), ("5-op graph forward", cases_fwd),
                         ("5-op graph forward + backward", cases_bwd)]:
        times = compare(cases, number=2000, rounds=9)
        report(title, times, baseline=[k for k in cases if k.startswith("torch")][0]
               if torch is not None else next(iter(cases)))


if __name__ == "__main__":
    main()
