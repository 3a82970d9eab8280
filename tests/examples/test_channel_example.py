"""The channel autoencoder example: exact baselines, a short training run, the BLER table."""
import math

import numpy as np


def test_theory_curves_are_exact(load_example):
    ex = load_example("channel_autoencoder")
    # BPSK at 9.6 dB: the textbook bit error rate ~1e-5
    p = ex.uncoded_bler(9.6, 1)
    assert 0.9e-5 < p < 1.1e-5
    np.testing.assert_allclose(ex.uncoded_bler(4.0, 2), 1 - (1 - ex.uncoded_bler(4.0, 1)) ** 2)
    # Hamming (7,4): corrects every single error, so BLER ~ 21 p^2 for small p
    q = float(ex.q_function(np.sqrt(2 * 4 / 7 * 10 ** 1.0)))
    np.testing.assert_allclose(ex.hamming74_hard_bler(10.0), 21 * q ** 2, rtol=0.01)
    cw = ex.hamming74_codewords()
    d = (cw[:, None, :] != cw[None, :, :]).sum(-1) + 7 * np.eye(16, dtype=int)
    assert d.min() == 3                                   # minimum distance of Hamming (7,4)
    assert math.isclose(ex.required_ebn0(np.array([0.0, 1.0]), [1e-2, 1e-4], 1e-3), 0.5)


def test_channel_example_trains_and_reports(tmp_path, load_example):
    ex = load_example("channel_autoencoder")
    out = ex.main(["--systems", "2,2", "--epochs", "6", "--messages", "8000", "--lr", "1e-2",
                   "--blocks", "20000", "--errors", "200", "--ebn0", "0", "4", "2", "--plots",
                   str(tmp_path)])
    r = out[(2, 2)]
    assert r["loss"][-1] < r["loss"][0]
    np.testing.assert_allclose((r["codewords"] ** 2).sum(1), 2.0, rtol=1e-4)
    assert np.all(np.diff(r["autoencoder"]) < 0)          # fewer errors at higher Eb/N0
    assert r["autoencoder"][-1] < 0.2
    assert (tmp_path / "channel_ae_2_2.png").stat().st_size > 0
