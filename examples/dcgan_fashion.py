"""DCGAN (Radford et al. 2016) on Fashion-MNIST, judged by a classifier; latent interpolation.

    python examples/dcgan_fashion.py [--steps 300] [--minutes 0] [--filters 32] [--plots DIR]

``fundl.zoo.dcgan``: a generator of fractionally strided convolutions with batch norm and
ReLU ending in tanh, a discriminator of strided convolutions with batch norm and LeakyReLU
(0.2), weights from N(0, 0.02), both trained with Adam(2e-4, beta_1=0.5) by the GAN's own
``train_step`` (one discriminator step, one non-saturating generator step per batch). The
paper's networks are wider (and for 64x64 images); ``--filters`` sets the width, small by
default because this runs on a CPU.

Training runs for ``--steps`` generator steps (or until ``--minutes`` of wall-clock time,
if given). The samples are judged by an MLP classifier trained on the real clothes (cached
as ``fashion_mnist_classifier.zip`` in ``--cache``, default the plots directory) with
``fundl.zoo.sample_quality``: the share classified with confidence > 0.9 and the spread
over the 10 classes; real test images give the ceiling. With ``--plots DIR``: a grid of
samples, a picture of the generator walking in latent space (each row interpolates linearly
between two random ``z``), and the training curves.
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl.zoo import dcgan, sample_quality


# examples/_data.py (the image examples' shared loading and picture helpers), found beside this
# file so that both ``python examples/<name>.py`` and the tests' loader find it
_spec = importlib.util.spec_from_file_location(
    "_data", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_data.py"))
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)


def load(n_train):
    from fundl.datasets import fashion_mnist

    (x, y), (xt, yt) = fashion_mnist.load_data()
    x = x[:n_train].astype("float32")[..., None] / 255
    xt = xt.astype("float32")[..., None] / 255
    return x, y[:n_train], xt, yt





def interpolation(gan, rows=6, cols=10, seed=0):
    """``rows`` walks of ``cols`` images: G((1 - t) z_a + t z_b) for t from 0 to 1."""
    rng = np.random.default_rng(seed)
    za = rng.standard_normal((rows, 1, gan.latent_dim))
    zb = rng.standard_normal((rows, 1, gan.latent_dim))
    t = np.linspace(0, 1, cols)[None, :, None]
    z = ((1 - t) * za + t * zb).reshape(rows * cols, -1).astype("float32")
    return (gan.generator.predict(z, verbose=0)[..., 0] + 1) / 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (batches)")
    parser.add_argument("--minutes", type=float, default=0,
                        help="stop after this much wall-clock time (0: no limit)")
    parser.add_argument("--train", type=int, default=60000, help="training images")
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--latent", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=2000, help="samples to score")
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs to this directory")
    parser.add_argument("--cache", default=None,
                        help="where the judging classifier is cached (default: --plots)")
    args = parser.parse_args(argv)

    x, y, x_test, y_test = load(args.train)
    judge = _data.judge_classifier(args.cache or args.plots, x, y, "fashion_mnist",
                                   args.classifier_epochs, args.seed)
    acc = float(np.mean(np.argmax(judge.predict(x_test.reshape(-1, 784), verbose=0), 1)
                        == y_test))

    fl.manual_seed(args.seed)
    gan = dcgan(args.latent, (28, 28, 1), filters=args.filters)
    gan.compile(d_optimizer=fl.optimizers.Adam(2e-4, beta_1=0.5),
                g_optimizer=fl.optimizers.Adam(2e-4, beta_1=0.5))
    rng = np.random.default_rng(args.seed)
    history = {}
    chunk = 20                    # batches per fit call: a time check and a history point
    start = time.perf_counter()
    done = 0
    while done < args.steps:
        n = min(chunk, args.steps - done)
        idx = rng.choice(len(x), n * args.batch_size, replace=len(x) < n * args.batch_size)
        logs = gan.fit(x[idx] * 2 - 1, epochs=1, batch_size=args.batch_size, shuffle=False,
                       verbose=0).history
        for k, v in logs.items():
            history.setdefault(k, []).append(v[-1])
        done += n
        print(f"step {done}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in history.items()),
              flush=True)
        if args.minutes and time.perf_counter() - start > 60 * args.minutes:
            break
    seconds = time.perf_counter() - start

    samples = (gan.sample(args.samples, seed=args.seed + 1) + 1) / 2
    quality = sample_quality(judge.predict(samples.reshape(-1, 784), verbose=0))
    ceiling = sample_quality(judge.predict(x_test[:args.samples].reshape(-1, 784), verbose=0))
    print(f"judge: MLP test accuracy {acc:.4f}")
    print(f"DCGAN (filters {args.filters}, {done} steps of {args.batch_size}, {seconds:.0f} s): "
          f"confident (>0.9) {quality['confident_share']:.3f}, class spread "
          f"{quality['class_spread']:.2f}/10, score {quality['inception_score']:.2f}")
    print(f"real test images: confident (>0.9) {ceiling['confident_share']:.3f}, class "
          f"spread {ceiling['class_spread']:.2f}/10, score {ceiling['inception_score']:.2f}")
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        paths = [_data.save_picture(_data.tile(samples[:64, ..., 0], 8),
                                    os.path.join(args.plots, "dcgan_fashion_samples.png")),
                 _data.save_picture(_data.tile(interpolation(gan, seed=args.seed), 10),
                                    os.path.join(args.plots,
                                                 "dcgan_fashion_interpolation.png"))]
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        steps = np.arange(1, len(history["d_loss"]) + 1) * chunk
        for k in ("d_loss", "g_loss", "d_real", "d_fake"):
            ax.plot(steps, history[k], label=k)
        ax.set_xlabel("step")
        ax.legend()
        fig.tight_layout()
        paths.append(os.path.join(args.plots, "dcgan_fashion_history.png"))
        fig.savefig(paths[-1], dpi=80)
        plt.close(fig)
        for path in paths:
            print("wrote", path)
    return {"history": history, "quality": quality, "real_quality": ceiling,
            "judge_accuracy": acc, "steps": done, "seconds": seconds}


if __name__ == "__main__":
    main()
