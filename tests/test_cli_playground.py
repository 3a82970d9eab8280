"""``fundl playground``: the server, its JSON API (training, input validation) and the command."""
import json
import math
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from fundl import _cli_playground as playground
from fundl.cli import main


@pytest.fixture
def server():
    """A playground server on a free port, serving in a background thread; shut down after."""
    srv = playground.make_server("127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def _post(srv, path, body, content_type="application/json"):
    """POST ``body`` (JSON-encoded unless bytes); returns (status, decoded JSON answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(srv.base + path, data=data,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        with e:
            assert e.headers["Content-Type"] == "application/json"
            return e.code, json.load(e)


def test_get_serves_the_self_contained_page(server):
    with urllib.request.urlopen(server.base + "/", timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        page = response.read().decode()
    assert "<title>fundl playground</title>" in page
    assert "/api/new" in page and "/api/train" in page
    assert "http://" not in page and "https://" not in page  # no CDN: works offline


def test_spiral_trains_loss_falls_and_grid_is_probabilities(server):
    status, new = _post(server, "/api/new", {"dataset": "spiral", "samples": 200, "noise": 0.05,
                                             "classes": 3, "hidden": "16,16",
                                             "activation": "tanh", "optimizer": "adam",
                                             "learning_rate": 0.03, "seed": 1,
                                             "train_fraction": 0.9})
    assert status == 200
    x, y = np.array(new["x"]), np.array(new["y"])
    assert x.shape == (200, 2) and y.shape == (200,) and set(y.tolist()) == {0, 1, 2}
    xmin, xmax, ymin, ymax = new["extent"]
    assert xmin < x[:, 0].min() and x[:, 0].max() < xmax
    assert ymin < x[:, 1].min() and x[:, 1].max() < ymax
    assert new["classes"] == 3
    assert new["parameters"] == (2 * 16 + 16) + (16 * 16 + 16) + (16 * 3 + 3)

    losses = []
    for _ in range(3):
        status, step = _post(server, "/api/train", {"session": new["session"], "epochs": 10})
        assert status == 200 and not step["diverged"]
        assert len(step["loss"]) == 10 and all(math.isfinite(v) for v in step["loss"])
        assert 0.0 <= step["accuracy"] <= 1.0
        losses.append(step["loss"][-1])
    assert step["epoch"] == 30
    assert losses[-1] < losses[0] and losses[-1] < math.log(3)  # log(3): a uniform guess
    assert step["accuracy"] > 1 / 3 + 0.1  # better than chance

    grid = np.array(step["grid"])
    size = new["grid_size"]
    assert grid.shape == (size, size, 3)
    assert np.all((grid >= 0) & (grid <= 1))
    np.testing.assert_allclose(grid.sum(axis=-1), 1.0, atol=3 * 0.0005 + 1e-9)  # 3 roundings


def test_grid_layout_is_as_documented(server):
    # Row 0 is the top (largest y), column 0 the left (smallest x), values at cell centres.
    status, new = _post(server, "/api/new", {"dataset": "moons", "samples": 100, "seed": 2})
    assert status == 200
    _post(server, "/api/train", {"session": new["session"], "epochs": 3})
    status, step = _post(server, "/api/train", {"session": new["session"], "epochs": 1})
    grid, size = np.array(step["grid"]), new["grid_size"]
    xmin, xmax, ymin, ymax = new["extent"]
    half = (xmax - xmin) / size / 2
    assert (ymax - ymin) == pytest.approx(xmax - xmin, rel=1e-3)  # square cells
    model = server.sessions.get(new["session"]).model
    corners = np.array([[xmin + half, ymax - half], [xmax - half, ymin + half],
                        [xmax - half, ymax - half]], dtype=np.float32)
    expected = model.predict(corners)
    np.testing.assert_allclose(grid[[0, -1, 0], [0, -1, -1]], expected, atol=1e-3)
    assert not np.allclose(expected[0], expected[1], atol=1e-2)  # the check can tell corners apart


@pytest.mark.parametrize("body, words", [
    ({"dataset": "mnist"}, ["dataset", "mnist", "spiral, circles, xor"]),
    ({"activation": "__import__('os')"}, ["activation", "relu, tanh, sigmoid"]),
    ({"optimizer": "rmsprop"}, ["optimizer", "rmsprop", "sgd, adam"]),
    ({"hidden": "8,0"}, ["hidden", "width 0", "from 1 to 64"]),
    ({"hidden": "8,x"}, ["hidden", '"x"', "positive integer"]),
    ({"hidden": [8.5]}, ["hidden", "8.5"]),
    ({"hidden": [4] * 7}, ["hidden", "7 layers", "at most 6"]),
    ({"hidden": [1000]}, ["hidden", "1000", "from 1 to 64"]),
    ({"learning_rate": 0}, ["learning_rate", "> 0", "got 0"]),
    ({"learning_rate": -0.1}, ["learning_rate", "got -0.1"]),
    ({"learning_rate": "0.1"}, ["learning_rate", '"0.1"']),
    ({"samples": 5}, ["samples", "10 to 2000", "got 5"]),
    ({"samples": True}, ["samples", "got true"]),
    ({"noise": -1}, ["noise", "0 to 1"]),
    ({"dataset": "moons", "classes": 3}, ["moons", "classes", "spiral and gaussians"]),
    ({"features": "x,z"}, ["feature", '"z"', "x, y, x2, y2, xy, sinx, siny"]),
    ({"features": ""}, ["features is empty"]),
    ({"features": ["x", "x"]}, ["twice"]),
    ({"features": 3}, ["features must be"]),
    ({"regularization": "l3"}, ["regularization", "none, l1, l2"]),
    ({"regularization_rate": -1}, ["regularization_rate", "0 to 10"]),
    ({"train_fraction": 0.95}, ["train_fraction", "0.1 to 0.9"]),
    ({"seq": -1}, ["seq", "got -1"]),
    ({"epochs": 5}, ["unknown field epochs", "allowed fields"]),
    ([1, 2], ["JSON object", "list"]),
])
def test_bad_new_requests_get_400_saying_what_is_allowed(server, body, words):
    status, answer = _post(server, "/api/new", body)
    assert status == 400
    assert set(answer) == {"error"}
    for word in words:
        assert word in answer["error"], answer["error"]
    assert "Traceback" not in answer["error"]


def test_bad_train_requests(server):
    _, new = _post(server, "/api/new", {"dataset": "xor", "samples": 40})
    sid = new["session"]
    for body, words in [({"session": sid, "epochs": 0}, ["epochs", "1 to 200", "got 0"]),
                        ({"session": sid, "epochs": 10**6}, ["epochs", "1 to 200"]),
                        ({"session": sid, "epochs": "5"}, ["epochs", '"5"']),
                        ({"epochs": 1}, ["session is missing"]),
                        ({"session": sid, "lr": 1}, ["unknown field lr"])]:
        status, answer = _post(server, "/api/train", body)
        assert status == 400, body
        for word in words:
            assert word in answer["error"], answer["error"]


def test_too_many_steps_per_call_is_refused(server):
    _, new = _post(server, "/api/new", {"samples": 2000, "batch_size": 1,
                                        "train_fraction": 0.9})
    status, answer = _post(server, "/api/train", {"session": new["session"], "epochs": 12})
    assert status == 400
    # Only the 1800 training points count.
    assert "21600 steps" in answer["error"] and "fewer epochs" in answer["error"]


def test_unknown_session_is_a_json_error(server):
    status, answer = _post(server, "/api/train", {"session": "0123456789abcdef", "epochs": 1})
    assert status in (400, 404)
    assert "unknown session" in answer["error"] and "/api/new" in answer["error"]


def test_malformed_requests(server):
    status, answer = _post(server, "/api/new", b"{not json")
    assert status == 400 and "not valid JSON" in answer["error"]
    status, answer = _post(server, "/api/new", {}, content_type="text/plain")
    assert status == 415 and "application/json" in answer["error"]
    status, answer = _post(server, "/api/new", b" " * (playground.MAX_BODY_BYTES + 1))
    assert status == 413
    status, answer = _post(server, "/api/delete", {})
    assert status == 404 and "/api/new" in answer["error"]


def test_defaults_build_a_working_session(server):
    status, new = _post(server, "/api/new", {})
    assert status == 200 and new["classes"] == 2 and len(new["x"]) == 300
    status, step = _post(server, "/api/train", {"session": new["session"]})
    assert status == 200 and step["epoch"] == playground.TRAIN_FIELDS["epochs"][0]


def test_session_store_drops_the_oldest():
    store = playground.SessionStore(limit=2)
    first, second = store.add("a"), store.add("b")
    store.get(first)  # used: now the newest
    third = store.add("c")
    assert len(store) == 2
    assert store.get(first) == "a" and store.get(third) == "c"
    with pytest.raises(playground.SessionNotFound, match="at most 2"):
        store.get(second)


def test_non_finite_values_become_null():
    values = np.array([[0.12345, np.nan], [np.inf, 1.0]])
    assert playground._rounded(values, 3) == [[0.123, None], [None, 1.0]]
    json.dumps(playground._rounded(values, 3), allow_nan=False)  # valid JSON


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["playground", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--port", "--host", "--no-browser", "8765", "127.0.0.1"):
        assert option in out


def test_fundl_help_mentions_playground(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "playground" in capsys.readouterr().out


def test_run_opens_the_browser_and_stops_on_ctrl_c(monkeypatch, capsys):
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(playground.ThreadingHTTPServer, "serve_forever", interrupted)
    assert main(["playground", "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert len(opened) == 1 and opened[0].startswith("http://127.0.0.1:") and opened[0] in out
    assert "stopped" in out

    assert main(["playground", "--port", "0", "--no-browser"]) == 0
    assert len(opened) == 1


def test_run_reports_a_port_in_use(capsys):
    taken = playground.make_server("127.0.0.1", 0)
    try:
        port = taken.server_address[1]
        assert main(["playground", "--port", str(port), "--no-browser"]) == 1
    finally:
        taken.server_close()
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "--port" in err


def test_bad_port_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["playground", "--port", "70000"])
    assert exit_info.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_command_serves_until_ctrl_c():
    process = subprocess.Popen([sys.executable, "-m", "fundl.cli", "playground", "--port", "0",
                                "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline()  # "fundl playground at http://127.0.0.1:PORT/ ..."
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url, timeout=30) as response:
            assert b"<title>fundl playground</title>" in response.read()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_a_loopback_server_refuses_other_host_names():
    # DNS rebinding: a foreign page whose name resolves to 127.0.0.1 sends its own Host
    import http.client
    import threading

    from fundl._cli_playground import make_server

    server = make_server(port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        for host, status in [(f"evil.example:{port}", 403), (f"localhost:{port}", 200),
                             (f"127.0.0.1:{port}", 200)]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/", headers={"Host": host})
            response = conn.getresponse()
            body = response.read()
            conn.close()
            assert response.status == status, (host, body[:200])
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------ TensorFlow Playground features and the split

def test_features_split_spec_and_seq_in_the_answer(server):
    body = {"dataset": "circles", "samples": 101, "seed": 5, "features": "x2, y2",
            "hidden": "", "train_fraction": 0.3, "seq": 17}
    status, new = _post(server, "/api/new", body)
    assert status == 200
    assert new["seq"] == 17
    assert new["spec"] == playground.parse_new(body)
    assert new["spec"]["features"] == ["x2", "y2"] and new["spec"]["hidden"] == []
    assert new["n_train"] == round(101 * 0.3) and len(new["x"]) == 101
    assert new["parameters"] == 2 * 2 + 2  # two features straight into the softmax
    _, again = _post(server, "/api/new", body)
    assert again["x"] == new["x"] and again["session"] != new["session"]  # seeded split
    session = server.sessions.get(new["session"])
    x = np.array(new["x"])
    np.testing.assert_allclose(session.inputs, np.stack([x[:, 0] ** 2, x[:, 1] ** 2], 1),
                               atol=1e-3)


def test_squared_features_make_circles_linearly_separable(server):
    # The TensorFlow Playground's lesson: with x² and y², no hidden layer is needed.
    _, new = _post(server, "/api/new", {"dataset": "circles", "samples": 200, "noise": 0.05,
                                        "features": ["x2", "y2"], "hidden": [],
                                        "learning_rate": 0.1, "seed": 1})
    _, linear = _post(server, "/api/new", {"dataset": "circles", "samples": 200, "noise": 0.05,
                                           "features": ["x", "y"], "hidden": [],
                                           "learning_rate": 0.1, "seed": 1})
    for _ in range(3):
        _, step = _post(server, "/api/train", {"session": new["session"], "epochs": 20})
        _, flat = _post(server, "/api/train", {"session": linear["session"], "epochs": 20})
    assert step["session"] == new["session"] and step["spec"] == new["spec"]
    assert step["test_accuracy"] > 0.9 and step["accuracy"] > 0.9
    assert flat["test_accuracy"] < 0.75  # a line cannot separate two rings
    assert step["test_loss"] < flat["test_loss"]


def test_feature_columns_formulas():
    points = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    got = playground.feature_columns(points, list(playground.FEATURES))
    x, y = points[:, 0], points[:, 1]
    expected = np.stack([x, y, x * x, y * y, x * y, np.sin(np.pi * x), np.sin(np.pi * y)], 1)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_test_scores_are_computed_on_the_held_out_points(server):
    _, new = _post(server, "/api/new", {"dataset": "xor", "samples": 60, "seed": 3,
                                        "train_fraction": 0.5})
    _, step = _post(server, "/api/train", {"session": new["session"], "epochs": 2})
    session = server.sessions.get(new["session"])
    x_test, y_test = session.inputs[new["n_train"]:], np.array(new["y"])[new["n_train"]:]
    probs = session.model.predict(x_test)
    assert step["test_accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y_test))
    assert step["test_loss"] == pytest.approx(
        -np.mean(np.log(probs[np.arange(len(y_test)), y_test])), rel=1e-4)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_regularisation_shrinks_the_weights(server, kind):
    def kernel_norm(rate):
        _, new = _post(server, "/api/new", {"dataset": "spiral", "samples": 100, "seed": 2,
                                            "hidden": "8", "regularization": kind,
                                            "regularization_rate": rate})
        _, step = _post(server, "/api/train", {"session": new["session"], "epochs": 15})
        model = server.sessions.get(new["session"]).model
        kernels = [layer.kernel.numpy() for layer in model.layers]
        return sum(np.abs(k).sum() for k in kernels), step

    free, free_step = kernel_norm(0.0)
    shrunk, step = kernel_norm(0.1)
    assert shrunk < 0.5 * free
    # The logged training loss carries the penalty; train_loss is the cross-entropy alone.
    assert step["loss"][-1] > step["train_loss"]
    assert free_step["loss"][-1] == pytest.approx(free_step["train_loss"], rel=0.2)


def test_neuron_maps_are_each_units_output(server):
    _, new = _post(server, "/api/new", {"dataset": "moons", "samples": 50, "hidden": "3,2",
                                        "activation": "tanh", "seed": 4})
    g = new["neuron_grid"]
    assert [len(layer) for layer in new["neurons"]] == [3, 2]
    assert all(len(unit) == g * g for layer in new["neurons"] for unit in layer)
    session = server.sessions.get(new["session"])
    first = session.model.layers[0]
    xmin, xmax, ymin, ymax = new["extent"]
    half = (xmax - xmin) / g / 2
    corner = np.array([[xmin + half, ymax - half], [xmax - half, ymin + half]], np.float32)
    expected = np.tanh(corner @ first.kernel.numpy() + first.bias.numpy())
    got = np.array(new["neurons"][0])[:, [0, g * g - 1]].T  # top-left and bottom-right cells
    np.testing.assert_allclose(got, expected, atol=2e-3)
    _, step = _post(server, "/api/train", {"session": new["session"], "epochs": 1})
    assert [len(layer) for layer in step["neurons"]] == [3, 2]
    # The kernels, for the lines between the neurons: 2 inputs -> 3 -> 2 -> 2 classes.
    assert [np.shape(k) for k in step["weights"]] == [(2, 3), (3, 2), (2, 2)]
    np.testing.assert_allclose(step["weights"][1], session.model.layers[1].kernel.numpy(),
                               atol=5e-4)
    assert [np.shape(k) for k in new["weights"]] == [(2, 3), (3, 2), (2, 2)]


def test_the_page_offers_the_servers_features_and_fields():
    page = playground.PAGE
    for name, label in playground.FEATURES.items():
        assert f'{name}: ["{label}"' in page  # the page computes the same thumbnails
    for field in ("dataset", "samples", "noise", "seed", "hidden", "activation", "optimizer",
                  "learning_rate", "batch_size", "regularization", "regularization_rate"):
        assert f'id="{field}"' in page
    assert "train_fraction" in page and "features: features()" in page and "body.seq" in page
