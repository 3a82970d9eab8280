"""A GAN of multilayer perceptrons on MNIST (non-saturating loss), judged by a classifier.

    python examples/gan_mnist.py [--epochs 5] [--train 60000] [--plots DIR]

The lecture's minimax game, ``min_G max_D E log D(x) + E log(1 - D(G(z)))``, played by
``fundl.zoo.mlp_gan`` (a subclassed Model whose ``train_step`` makes one discriminator step
and one generator step on ``-log D(G(z))``, the non-saturating loss). Pixels are scaled to
[-1, 1] (the generator ends in tanh).

The samples are judged with a fundl classifier trained on the real digits (an MLP, trained
here once and cached as ``mnist_classifier.zip`` in the ``--cache`` directory, by default
the plots directory): ``fundl.zoo.sample_quality`` reports the share of samples it classifies
with confidence > 0.9 and the spread of the predicted classes (``exp`` of the class
histogram's entropy, 10 at best), plus an Inception-score-like number with this classifier.
The same numbers for real test digits are printed as the ceiling. With ``--plots DIR`` it
writes a grid of samples and the training curves.
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl.zoo import mlp_gan, sample_quality


# examples/_data.py (the image examples' shared loading and picture helpers), found beside this
# file so that both ``python examples/<name>.py`` and the tests' loader find it
_spec = importlib.util.spec_from_file_location(
    "_data", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_data.py"))
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)


def load(n_train, name="mnist"):
    from fundl import datasets

    (x, y), (xt, yt) = getattr(datasets, name).load_data()
    x = x[:n_train].reshape(len(x[:n_train]), -1).astype("float32") / 255
    xt = xt.reshape(len(xt), -1).astype("float32") / 255
    return x, y[:n_train], xt, yt





def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=60000, help="training digits")
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--samples", type=int, default=2000, help="samples to score")
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs to this directory")
    parser.add_argument("--cache", default=None,
                        help="where the judging classifier is cached (default: --plots)")
    args = parser.parse_args(argv)

    x, y, x_test, y_test = load(args.train)
    cache = args.cache or args.plots
    judge = _data.judge_classifier(cache, x, y, "mnist", args.classifier_epochs, args.seed)
    acc = float(np.mean(np.argmax(judge.predict(x_test, verbose=0), 1) == y_test))

    fl.manual_seed(args.seed)
    gan = mlp_gan(args.latent, 784, hidden=tuple(args.hidden))
    gan.compile(d_optimizer=fl.optimizers.Adam(args.lr, beta_1=0.5),
                g_optimizer=fl.optimizers.Adam(args.lr, beta_1=0.5))
    start = time.perf_counter()
    history = gan.fit(x * 2 - 1, epochs=args.epochs, batch_size=args.batch_size, verbose=2)
    seconds = time.perf_counter() - start

    samples = (gan.sample(args.samples, seed=args.seed + 1) + 1) / 2
    quality = sample_quality(judge.predict(samples, verbose=0))
    ceiling = sample_quality(judge.predict(x_test[:args.samples], verbose=0))
    print(f"judge: MLP test accuracy {acc:.4f}")
    print(f"GAN ({args.epochs} epochs on {len(x)} digits, {seconds:.0f} s): confident (>0.9) "
          f"{quality['confident_share']:.3f}, class spread {quality['class_spread']:.2f}/10, "
          f"score {quality['inception_score']:.2f}")
    print(f"real test digits:                confident (>0.9) "
          f"{ceiling['confident_share']:.3f}, class spread {ceiling['class_spread']:.2f}/10, "
          f"score {ceiling['inception_score']:.2f}")
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        path = _data.save_picture(_data.tile(samples[:100].reshape(-1, 28, 28), 10),
                            os.path.join(args.plots, "gan_mnist_samples.png"))
        print("wrote", path)
        fig = fl.viz.plot_history(history, to_file=os.path.join(args.plots,
                                                                "gan_mnist_history.png"))
        import matplotlib.pyplot as plt

        plt.close(fig)
    return {"history": history.history, "quality": quality, "real_quality": ceiling,
            "judge_accuracy": acc, "seconds": seconds}


if __name__ == "__main__":
    main()
