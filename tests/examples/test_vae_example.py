"""The VAE example (a custom train_step with GradientTape): its losses fall and it plots."""


def test_vae_example_trains_with_its_custom_step(tmp_path, load_example, need_data):
    need_data("mnist")
    out = load_example("mnist_vae").main(["--train", "512", "--test", "64", "--epochs", "2",
                                         "--batch-size", "64", "--plots", str(tmp_path)])
    h = out["history"]
    assert set(h) == {"loss", "reconstruction_loss", "kl_loss"}
    assert h["reconstruction_loss"][1] < h["reconstruction_loss"][0]
    assert out["test_reconstruction_loss"] < 450        # 543 for all-0.5 pixels
    assert (tmp_path / "vae_reconstructions.png").stat().st_size > 0
    assert (tmp_path / "vae_latent_grid.png").stat().st_size > 0
    assert (tmp_path / "vae_prior_samples.png").stat().st_size > 0
    assert out["test_reconstruction_loss"] < out["test_elbo"] < 600
