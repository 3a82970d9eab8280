"""A denoising autoencoder on noisy MNIST: PSNR of the noisy digits and of the cleaned ones.

    python examples/denoising_autoencoder.py [--epochs 5] [--noise 0.5] [--plots DIR]

Vincent et al. (2008): corrupt the input, train the network to give back the clean one.
``fundl.zoo.dense_autoencoder(..., input_noise=sigma)`` puts a ``GaussianNoise(sigma)``
layer in front of the encoder, active in training only, so ``fit(x, x)`` learns to undo
fresh noise every epoch. The test digits get the same kind of noise once (seeded), and the
peak signal-to-noise ratio ``PSNR = 10 log10(1 / MSE)`` against the clean digits (pixels in
[0, 1]) is reported before and after the autoencoder. With ``--plots DIR``: clean, noisy and
denoised test digits.
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl.zoo import dense_autoencoder


# examples/_data.py (the image examples' shared loading and picture helpers), found beside this
# file so that both ``python examples/<name>.py`` and the tests' loader find it
_spec = importlib.util.spec_from_file_location(
    "_data", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_data.py"))
_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_data)





def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--noise", type=float, default=0.5, help="Gaussian noise stddev")
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 256])
    parser.add_argument("--code", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNGs to this directory")
    args = parser.parse_args(argv)

    x, x_test = _data.load_flat(args.train, args.test)
    noisy = x_test + np.random.default_rng(args.seed + 1).normal(
        0, args.noise, x_test.shape).astype("float32")
    fl.manual_seed(args.seed)
    ae = dense_autoencoder(784, args.code, hidden=tuple(args.hidden), input_noise=args.noise)
    ae.compile(optimizer=fl.optimizers.Adam(args.lr), loss="mse")
    start = time.perf_counter()
    history = ae.fit(x, x, epochs=args.epochs, batch_size=args.batch_size, verbose=2)
    seconds = time.perf_counter() - start
    cleaned = ae.predict(noisy, batch_size=1000, verbose=0)
    before, after = _data.psnr(noisy, x_test), _data.psnr(cleaned, x_test)
    clipped = _data.psnr(np.clip(noisy, 0, 1), x_test)
    print(f"PSNR on test digits with Gaussian noise sigma = {args.noise}: noisy {before:.2f} dB "
          f"(clipped to [0, 1]: {clipped:.2f} dB), denoised {after:.2f} dB ({args.epochs} "
          f"epochs, {seconds:.0f} s)")
    out = {"history": history.history, "psnr_noisy": before, "psnr_noisy_clipped": clipped,
           "psnr_denoised": after}
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        out["picture"] = _data.picture([x_test, noisy, cleaned],
                                 os.path.join(args.plots, "denoising_ae.png"))
        print("wrote", out["picture"], "(rows: clean, noisy, denoised)")
    return out


if __name__ == "__main__":
    main()
