"""Quick runs of the estimator examples (perceptron, RBF, Hopfield, RBM, DBN, Markov chain,
Boltzmann machine) on tiny settings: they run, write their pictures, and their results move
the right way. (examples/kmeans_mnist.py is tested in test_generative_examples.py.)"""
import pytest


def test_perceptron_example(tmp_path, load_example):
    out = load_example("perceptron").main(["--samples", "60", "--max-epochs", "50",
                                           "--plots", str(tmp_path)])
    assert out["separable_accuracy"] == 1.0 and out["separable_epochs"] < 50
    assert out["xor_min_mistakes"] > 0 and out["xor_warned"]
    assert (tmp_path / "perceptron_epochs.png").stat().st_size > 0


def test_rbf_example(tmp_path, load_example):
    out = load_example("rbf_network").main(["--samples", "200", "--epochs", "15",
                                            "--plots", str(tmp_path)])
    assert out["moons_two_stage_accuracy"] > 0.9
    assert out["moons_backprop_loss"][-1] < out["moons_backprop_loss"][0]
    assert out["sine_backprop_loss"][-1] < out["sine_backprop_loss"][0]
    assert out["sine_two_stage_mse"] < 0.01
    assert (tmp_path / "rbf_network.png").stat().st_size > 0


def test_hopfield_example(tmp_path, load_example):
    out = load_example("hopfield").main(["--sizes", "100", "--trials", "1", "--loads", "3",
                                         "--completion-trials", "2", "--plots", str(tmp_path)])
    curve = out["curves"][100]
    assert curve[0] == 1.0 and curve[-1] < 0.8  # loads 0.02 and 0.26
    assert out["letters_recovered"] >= out["letters"] - 2
    assert (tmp_path / "hopfield_capacity.png").stat().st_size > 0
    assert (tmp_path / "hopfield_completion.png").stat().st_size > 0


@pytest.mark.slow
def test_rbm_example(tmp_path, load_example, need_data):
    need_data("mnist")
    out = load_example("rbm_mnist").main(["--samples", "500", "--test", "50",
                                          "--components", "32", "--n-iter", "2",
                                          "--plots", str(tmp_path)])
    assert out["pl_after"] > out["pl_before"] + 20
    assert (tmp_path / "rbm_filters.png").stat().st_size > 0


@pytest.mark.slow
def test_dbn_example(load_example, need_data):
    need_data("mnist")
    out = load_example("dbn_mnist").main(["--unlabelled", "500", "--labelled", "200",
                                          "--test", "300", "--hidden", "32", "16",
                                          "--pretrain-epochs", "2", "--epochs", "3"])
    assert out["dbn_loss"][-1] < out["dbn_loss"][0]
    assert out["random_loss"][-1] < out["random_loss"][0]
    assert 0 <= out["dbn_accuracy"] <= 1


def test_markov_example(tmp_path, load_example):
    out = load_example("markov_chain").main(["--steps", "3000", "--plots", str(tmp_path)])
    assert abs(out["freq"] - out["pi"]).max() < 0.05
    assert out["gaps"][-1] < 1e-4 < 0.1 < out["gaps"][0]
    assert out["bm_stationary_error"] < 1e-10 and out["gibbs_tv"] < 0.1
    assert (tmp_path / "markov_chain.png").stat().st_size > 0


def test_boltzmann_example(tmp_path, load_example):
    out = load_example("boltzmann_machine").main(["--epochs", "10", "--block", "5",
                                                  "--plots", str(tmp_path)])
    lls = [ll for _, ll in out["curve"]]
    assert lls[-1] > lls[0] + 0.3
    assert (tmp_path / "boltzmann_loglik.png").stat().st_size > 0
