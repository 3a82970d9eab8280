from fundl.callbacks import CSVLogger, ReduceLROnPlateau


def test_writes_header_and_rows_sorted(model, fake_fit, tmp_path):
    path = tmp_path / "log.csv"
    logs = [{"val_loss": 1.0, "loss": 0.5, "accuracy": 0.25}, {"val_loss": 0.75, "loss": 0.125,
                                                                "accuracy": 0.5}]
    fake_fit(model, [CSVLogger(path)], logs)
    assert path.read_text() == ("epoch,accuracy,loss,val_loss\n"
                                "0,0.25,0.5,1.0\n"
                                "1,0.5,0.125,0.75\n")


def test_custom_separator(model, fake_fit, tmp_path):
    path = tmp_path / "log.tsv"
    fake_fit(model, [CSVLogger(str(path), separator="\t")], [{"loss": 0.5}])
    assert path.read_text() == "epoch\tloss\n0\t0.5\n"


def test_append_adds_rows_without_second_header(model, fake_fit, tmp_path):
    path = tmp_path / "log.csv"
    fake_fit(model, [CSVLogger(path)], [{"loss": 0.5}])
    fake_fit(model, [CSVLogger(path, append=True)], [{"loss": 0.25}, {"loss": 0.125}])
    assert path.read_text() == "epoch,loss\n0,0.5\n0,0.25\n1,0.125\n"


def test_append_to_missing_file_writes_header(model, fake_fit, tmp_path):
    path = tmp_path / "new.csv"
    fake_fit(model, [CSVLogger(path, append=True)], [{"loss": 0.5}])
    assert path.read_text() == "epoch,loss\n0,0.5\n"


def test_without_append_overwrites(model, fake_fit, tmp_path):
    path = tmp_path / "log.csv"
    fake_fit(model, [CSVLogger(path)], [{"loss": 0.5}, {"loss": 0.25}])
    fake_fit(model, [CSVLogger(path)], [{"loss": 0.125}])
    assert path.read_text() == "epoch,loss\n0,0.125\n"


def test_missing_key_written_as_na(model, fake_fit, tmp_path):
    path = tmp_path / "log.csv"
    fake_fit(model, [CSVLogger(path)], [{"loss": 0.5, "val_loss": 1.0}, {"loss": 0.25}])
    assert path.read_text().splitlines()[2] == "1,0.25,NA"


def test_sees_keys_added_by_earlier_callbacks(model, fake_fit, tmp_path):
    path = tmp_path / "log.csv"
    fake_fit(model, [ReduceLROnPlateau(monitor="loss"), CSVLogger(path)], [{"loss": 0.5}])
    assert path.read_text() == "epoch,learning_rate,loss\n0,0.1,0.5\n"


def test_file_is_closed_after_training(model, fake_fit, tmp_path):
    logger = CSVLogger(tmp_path / "log.csv")
    fake_fit(model, [logger], [{"loss": 0.5}])
    assert logger._file is None
