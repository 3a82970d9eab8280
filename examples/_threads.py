"""The BLAS thread limit the small-network examples (CartPole DQN, behaviour cloning) share.

Not an example itself: the examples load it by its path (beside them), like ``_plots.py``, so
that it is found both when an example runs as ``python examples/<name>.py`` and when a test
loads the example file.
"""


def add_blas_threads(parser):
    """``--blas-threads N`` (default 1) on an argparse parser."""
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads while training (default 1: products of 256-wide "
                             "layers gain nothing from more, and lose up to 10x when other "
                             "processes share the cores); 0 leaves the BLAS library's own "
                             "setting")


def run_with_blas_threads(threads, fn, *args):
    """``fn(*args)`` with at most ``threads`` BLAS threads (0: the library's own setting)."""
    if threads:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads, user_api="blas"):
            return fn(*args)
    return fn(*args)
