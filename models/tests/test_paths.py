"""Bundle names resolve through the same search path as the Rust plugin (src/model/bundle.rs)."""

from pathlib import Path

import pytest

from vss_models import bundle, paths


@pytest.fixture
def env(monkeypatch):
    for name in ("VSS_MODEL_PATH", "XDG_DATA_HOME", "XDG_DATA_DIRS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/home/u")
    return monkeypatch


def test_defaults_follow_xdg_after_the_checkout(env):
    assert paths.bundle_dirs() == [
        paths.BUNDLES_DIR,
        Path("/home/u/.local/share/vss/models"),
        Path("/usr/local/share/vss/models"),
        Path("/usr/share/vss/models"),
    ]


def test_vss_model_path_comes_first_and_replaces_the_checkout(env):
    env.setenv("VSS_MODEL_PATH", "mine::/opt/bundles:")
    env.setenv("XDG_DATA_HOME", "/data")
    env.setenv("XDG_DATA_DIRS", "/sys-a:relative:/data:/sys-b")
    expected = ["mine", "/opt/bundles", "/data/vss/models", "/sys-a/vss/models", "/sys-b/vss/models"]
    assert paths.bundle_dirs() == [Path(p) for p in expected]
    env.setenv("XDG_DATA_HOME", "rel")  # invalid: its default replaces it
    env.setenv("XDG_DATA_DIRS", "/s")
    assert paths.bundle_dirs()[2:] == [Path("/home/u/.local/share/vss/models"), Path("/s/vss/models")]


def test_a_name_resolves_in_the_first_folder_that_has_it(env, tmp_path):
    (tmp_path / "a" / "camvid-espnet").mkdir(parents=True)
    env.setenv("VSS_MODEL_PATH", f"{tmp_path / 'a'}:{paths.BUNDLES_DIR}")
    assert bundle.resolve("camvid-espnet") == tmp_path / "a" / "camvid-espnet"
    assert bundle.resolve("camvid-cgnet") == paths.BUNDLES_DIR / "camvid-cgnet"


def test_an_unknown_name_lists_the_folders_searched_and_the_names_found(env, tmp_path):
    env.setenv("VSS_MODEL_PATH", str(tmp_path))
    env.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    env.setenv("XDG_DATA_DIRS", str(tmp_path / "system"))
    with pytest.raises(bundle.BundleError) as err:
        bundle.resolve("camvid-espnet")
    text = str(err.value)
    assert str(tmp_path / "camvid-espnet") in text
    assert str(tmp_path / "data" / "vss" / "models" / "camvid-espnet") in text
    assert "bundles there: none" in text
    env.setenv("VSS_MODEL_PATH", str(paths.BUNDLES_DIR))
    with pytest.raises(bundle.BundleError, match="bundles there: camvid-bisenet, camvid-bisenet-arseg, camvid-cgnet"):
        bundle.resolve("no-such-bundle")
