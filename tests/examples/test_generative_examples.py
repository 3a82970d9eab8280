"""Quick runs of the autoencoder, GAN and k-means examples: tiny sizes, losses fall, pictures."""
import numpy as np
import pytest


def _falls(values):
    return values[-1] < values[0]


@pytest.mark.slow
def test_deep_autoencoder_vs_pca_example(tmp_path, load_example, need_data):
    need_data("mnist")
    out = load_example("autoencoder_mnist").main([
        "--train", "512", "--test", "128", "--epochs", "3", "--hidden", "64", "--plots",
        str(tmp_path)])
    assert _falls(out["history"]["loss"])
    assert 0 < out["pca_mse"] < 0.05 and 0 < out["ae_mse"] < 0.2
    assert (tmp_path / "autoencoder_vs_pca.png").stat().st_size > 0


def test_sparse_autoencoder_example(tmp_path, load_example, need_data):
    need_data("mnist")
    out = load_example("sparse_autoencoder").main([
        "--train", "512", "--test", "128", "--epochs", "3", "--units", "25", "--plots",
        str(tmp_path)])
    assert _falls(out["history"]["loss"])
    assert 0 < out["mean_activation"] < 0.5          # pushed down from sigmoid's 0.5
    assert (tmp_path / "sparse_ae_filters.png").stat().st_size > 0


def test_denoising_autoencoder_example(tmp_path, load_example, need_data):
    need_data("mnist")
    out = load_example("denoising_autoencoder").main([
        "--train", "512", "--test", "128", "--epochs", "3", "--hidden", "64", "--code", "32",
        "--lr", "3e-3", "--plots", str(tmp_path)])
    assert _falls(out["history"]["loss"])
    assert out["psnr_denoised"] > out["psnr_noisy"]
    assert (tmp_path / "denoising_ae.png").stat().st_size > 0


@pytest.mark.slow
def test_conv_autoencoder_example(tmp_path, load_example, need_data):
    need_data("mnist")
    out = load_example("conv_autoencoder").main([
        "--train", "256", "--test", "64", "--epochs", "2", "--filters", "4", "8", "--code",
        "16", "--lr", "1e-2", "--plots", str(tmp_path)])
    assert _falls(out["history"]["loss"])
    assert out["code_size"] == 16 and out["test_mse"] < 0.25
    assert (tmp_path / "conv_ae.png").stat().st_size > 0


def test_stacked_autoencoder_example(tmp_path, load_example, need_data):
    need_data("mnist")
    out = load_example("stacked_autoencoder").main([
        "--unlabelled", "512", "--labels", "50", "--test", "200", "--hidden", "32", "16",
        "--pretrain-epochs", "2", "--finetune-epochs", "2", "--plots", str(tmp_path)])
    for level in out["levels"]:
        assert _falls(level["loss"])
    for r in out["results"].values():
        assert 0 <= r["accuracy"] <= 1
    assert (tmp_path / "stacked_ae_finetuning.png").stat().st_size > 0


def test_gan_mnist_example(tmp_path, load_example, need_data):
    need_data("mnist")
    out = load_example("gan_mnist").main([
        "--train", "512", "--epochs", "2", "--hidden", "32", "64", "--samples", "100",
        "--classifier-epochs", "1", "--plots", str(tmp_path)])
    h = out["history"]
    assert set(h) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v).all() for v in h.values())
    q = out["quality"]
    assert 0 <= q["confident_share"] <= 1 and 1 <= q["class_spread"] <= 10
    assert out["real_quality"]["class_spread"] > 5       # the judge sees real digits' variety
    assert (tmp_path / "gan_mnist_samples.png").stat().st_size > 0
    assert (tmp_path / "mnist_classifier.zip").stat().st_size > 0   # cached judge


@pytest.mark.slow
def test_dcgan_fashion_example(tmp_path, load_example, need_data):
    need_data("fashion-mnist")
    out = load_example("dcgan_fashion").main([
        "--train", "512", "--steps", "4", "--filters", "4", "--latent", "8", "--batch-size",
        "16", "--samples", "50", "--classifier-epochs", "1", "--plots", str(tmp_path)])
    assert out["steps"] == 4 and all(np.isfinite(v).all() for v in out["history"].values())
    for name in ("dcgan_fashion_samples.png", "dcgan_fashion_interpolation.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_kmeans_example(tmp_path, load_example, need_data):
    need_data("mnist")
    out = load_example("kmeans_mnist").main(["--train", "1000", "--test", "200", "--n-init",
                                            "1", "--plots", str(tmp_path)])
    assert 0.3 < out["purity"] <= 1 and 0.3 < out["test_purity"] <= 1
    # Lloyd's steps never raise the within-cluster squared distance of the 2-D picture: each
    # assignment step and each update step lowers (or keeps) J = sum ||x - c_assigned||^2
    assert len(out["lloyd"]) == 7
    ex = load_example("kmeans_mnist")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal((-1.5, 1.0), 0.45, (100, 2)),
                        rng.normal((1.5, -1.0), 0.45, (100, 2))])
    steps = ex.lloyd_steps(x, np.array([[-2.0, -2.0], [2.0, 2.0]]), steps=3)
    j = [((x - c[a]) ** 2).sum() for c, a in steps[1:]]
    assert all(b <= a + 1e-9 for a, b in zip(j, j[1:])), j
    assert (tmp_path / "kmeans_lloyd.png").stat().st_size > 0


def test_purity_definition(load_example):
    purity = load_example("kmeans_mnist").purity
    assert purity(np.array([0, 0, 1, 1]), np.array([5, 5, 7, 7])) == 1.0
    assert purity(np.array([0, 1, 0, 1]), np.array([1, 1, 1, 1])) == 0.5
