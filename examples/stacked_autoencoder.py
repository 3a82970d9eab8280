"""A stacked autoencoder: greedy layer-wise pre-training, then fine-tuning with few labels.

    python examples/stacked_autoencoder.py [--unlabelled 20000] [--labels 100] [--plots DIR]

The lecture's recipe (Bengio et al. 2007): train the first layer as an autoencoder of the
pixels, the second as an autoencoder of the first layer's codes, and so on
(``fundl.zoo.stacked_autoencoder`` + ``fundl.zoo.pretrain_greedy``, on unlabelled digits);
then put a softmax on top of the pre-trained encoder and fine-tune the whole stack on the few
labelled digits. The same network trained from random weights on the same labels is the
baseline; both are scored on the test set. A linear probe (a softmax trained on the frozen
codes of each encoder) measures the features themselves. By default the stack is a denoising
one (Vincent et al. 2010: Gaussian noise of stddev 0.3 on each level's input while
pre-training).
With ``--plots DIR`` it draws the test accuracy of both during fine-tuning.
"""
import argparse
import os
import time

import numpy as np

import fundl as fl
from fundl.layers import Dense
from fundl.zoo import pretrain_greedy, stacked_autoencoder


def load(n_unlabelled, n_labels, n_test, seed):
    from fundl.datasets import mnist

    (x, y), (xt, yt) = mnist.load_data()
    x = x.reshape(-1, 784).astype("float32") / 255
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    # the labelled digits: the same number of each class
    labelled = np.concatenate([order[y[order] == c][:n_labels // 10] for c in range(10)])
    rest = np.setdiff1d(order, labelled)[:n_unlabelled]
    return (x[rest], x[labelled], y[labelled],
            xt[:n_test].reshape(-1, 784).astype("float32") / 255, yt[:n_test])


def classifier(encoder, seed, lr):
    fl.manual_seed(seed)
    model = fl.Sequential([encoder, Dense(10, activation="softmax", name="softmax")])
    model.compile(optimizer=fl.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unlabelled", type=int, default=20000)
    parser.add_argument("--labels", type=int, default=100, help="labelled digits (10 classes)")
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--pretrain-epochs", type=int, default=20, help="per level")
    parser.add_argument("--finetune-epochs", type=int, default=100)
    parser.add_argument("--finetune-lr", type=float, default=3e-3)
    parser.add_argument("--activation", default="sigmoid", help="the hidden units' activation")
    parser.add_argument("--noise", type=float, default=0.3,
                        help="a stacked denoising autoencoder with this input noise (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs to this directory")
    args = parser.parse_args(argv)

    x_u, x_l, y_l, x_test, y_test = load(args.unlabelled, args.labels, args.test, args.seed)
    fl.manual_seed(args.seed)
    sae = stacked_autoencoder(784, tuple(args.hidden), activation=args.activation,
                              input_noise=args.noise or None)
    start = time.perf_counter()
    levels = pretrain_greedy(sae, x_u, epochs=args.pretrain_epochs, batch_size=128,
                             optimizer=lambda: fl.optimizers.Adam(1e-3))
    seconds = time.perf_counter() - start
    for i, h in enumerate(levels, 1):
        print(f"level {i}: reconstruction loss {h['loss'][0]:.4f} -> {h['loss'][-1]:.4f}")

    results = {}
    # the same network with random weights
    fresh = stacked_autoencoder(784, tuple(args.hidden), activation=args.activation)
    for name, encoder in (("pre-trained", sae.get_layer("encoder")),
                          ("from scratch", fresh.get_layer("encoder"))):
        # a linear probe first: a softmax on the frozen codes says how good the features are
        encoder.trainable = False
        probe = classifier(encoder, args.seed, args.finetune_lr)
        probe.fit(x_l, y_l, epochs=args.finetune_epochs, batch_size=32, verbose=0)
        probe_acc = float(np.mean(np.argmax(probe.predict(x_test, verbose=0), 1) == y_test))
        encoder.trainable = True
        model = classifier(encoder, args.seed, args.finetune_lr)
        hist = model.fit(x_l, y_l, epochs=args.finetune_epochs, batch_size=32, verbose=0,
                         validation_data=(x_test, y_test))
        acc = float(np.mean(np.argmax(model.predict(x_test, verbose=0), 1) == y_test))
        results[name] = {"accuracy": acc, "probe_accuracy": probe_acc,
                         "val_accuracy": hist.history["val_accuracy"]}
    print(f"test accuracy with {len(y_l)} labels ({args.finetune_epochs} fine-tuning epochs): "
          f"pre-trained {results['pre-trained']['accuracy']:.4f}, from scratch "
          f"{results['from scratch']['accuracy']:.4f} (pre-training on {len(x_u)} unlabelled "
          f"digits, {args.pretrain_epochs} epochs per level, {seconds:.0f} s)")
    print(f"linear probe (softmax on the frozen codes): pre-trained "
          f"{results['pre-trained']['probe_accuracy']:.4f}, random weights "
          f"{results['from scratch']['probe_accuracy']:.4f}")
    out = {"levels": levels, "results": results}
    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(args.plots, exist_ok=True)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name, r in results.items():
            ax.plot(np.arange(1, len(r["val_accuracy"]) + 1), r["val_accuracy"], label=name)
        ax.set_xlabel("fine-tuning epoch")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{len(y_l)} labelled digits")
        ax.legend()
        fig.tight_layout()
        out["picture"] = os.path.join(args.plots, "stacked_ae_finetuning.png")
        fig.savefig(out["picture"], dpi=80)
        plt.close(fig)
        print("wrote", out["picture"])
    return out


if __name__ == "__main__":
    main()
