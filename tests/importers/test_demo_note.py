"""The default (synthetic) model says so on stderr, once, and never on stdout."""

from ispan_cli.runtime import loading
from ispan_cli.zoo import DEFAULT_MODEL


def test_default_model_note_goes_to_stderr_once(capsys, monkeypatch):
    monkeypatch.setattr(loading, "_noted", [])
    first = loading.resolve(None)
    loading.resolve(DEFAULT_MODEL)
    out, err = capsys.readouterr()
    assert first.model_id == DEFAULT_MODEL
    assert out == ""
    assert err.count("synthetic demo") == 1 and "README.md 'Real models'" in err


def test_other_models_get_no_note(capsys, monkeypatch, tmp_path):
    import shutil

    monkeypatch.setattr(loading, "_noted", [])
    folder = shutil.copytree(loading.resolve(None).path, tmp_path / "mine")
    capsys.readouterr()
    loading.resolve(str(folder))
    assert capsys.readouterr().err == ""
