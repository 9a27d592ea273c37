"""The on-disk cache of ``torchscope tree`` results: key, storage, and the CLI's hit/miss paths.

tests/conftest.py points TORCHSCOPE_CACHE_DIR at a fresh directory for every test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner
from zoo import build

import torchscope._treecache as tc
from torchscope import PatternError, TorchscopeError, freeze, load_model, tree
from torchscope._paths import CacheDirError, cache_dir
from torchscope._treecache import MAX_ENTRY_BYTES, load_cached_tree, store_tree, tree_cache_key
from torchscope._treedata import HookCounts, ModuleTree
from torchscope.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def run(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def entries() -> list[Path]:
    folder = cache_dir() / "tree"
    return sorted(folder.iterdir()) if folder.is_dir() else []


# --- the torch-free data module and from_dict ------------------------------------------------------


@pytest.mark.slow  # spawns a process
def test_treedata_and_treecache_import_without_torch() -> None:
    code = (
        "import sys, torchscope._treedata, torchscope._treecache\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_tree_module_reexports_the_data_classes() -> None:
    import torchscope._tree as collector
    import torchscope._treedata as data

    for name in ("FREEZE_STATES", "HookCounts", "ModuleEntry", "ModuleTree", "TreeWarning"):
        assert getattr(collector, name) is getattr(data, name)


def test_from_dict_inverts_to_dict_on_every_zoo_model(zoo_model) -> None:  # type: ignore[no-untyped-def]
    model, _ = zoo_model
    t = tree(model)
    back = ModuleTree.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back == t
    assert back.to_dict() == t.to_dict()
    assert isinstance(back.modules, tuple) and isinstance(back.param_bytes, tuple)


def test_from_dict_keeps_ties_aliases_hooks_and_warnings() -> None:
    tied, _ = build("tied")
    shared, _ = build("shared_child")
    cnn, _ = build("small_cnn")
    freeze(cnn, "backbone.1")  # a frozen BatchNorm in train mode: a norm_stats_drift warning
    handle = cnn.register_forward_hook(lambda *a: None)
    try:
        trees = [tree(tied), tree(shared), tree(cnn)]
    finally:
        handle.remove()
    assert trees[0].tied and trees[1].modules[1].aliases and trees[2].warnings
    assert trees[2].modules[0].hooks == HookCounts(forward=1)
    for t in trees:
        back = ModuleTree.from_dict(json.loads(json.dumps(t.to_dict())))
        assert back == t
        assert all(isinstance(group, tuple) for group in back.tied)
        assert all(isinstance(m.aliases, tuple) for m in back.modules)


def test_from_dict_inverts_to_dict_on_a_meta_torchvision_model() -> None:
    model = load_model("resnet18", device="meta")
    freeze(model, "layer1.*")
    t = tree(model)
    back = ModuleTree.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back == t
    assert back.total_params == 11_689_512 and back.devices == ("meta",)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.pop("total_params"), r"missing \['total_params'\]"),
        (lambda d: d.update(extra=1), r"unexpected \['extra'\]"),
        (lambda d: d.update(total_params=True), r"'total_params' must be an int, got True"),
        (lambda d: d.update(total_params="12"), r"'total_params' must be an int"),
        (lambda d: d["modules"][0].update(freeze="melted"), r"'freeze' must be one of"),
        (lambda d: d["modules"][0].update(training=1), r"'training' must be a bool"),
        (lambda d: d["modules"][0]["hooks"].pop("forward"), r"not a HookCounts dict"),
        (lambda d: d.update(param_bytes=[["float32"]]), r"\(dtype, bytes\) pairs"),
        (lambda d: d.update(modules="abc"), r"'modules' must be a list"),
        (lambda d: d.update(warnings=[1]), r"TreeWarning.from_dict needs a dict"),
    ],
)
def test_from_dict_refuses_a_damaged_dict(damage, message) -> None:  # type: ignore[no-untyped-def]
    model, _ = build("small_cnn")
    d = tree(model).to_dict()
    damage(d)
    with pytest.raises(TorchscopeError, match=message):
        ModuleTree.from_dict(d)


# --- the key ---------------------------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCHSCOPE_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("TORCHSCOPE_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "torchscope"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "torchscope"


def test_key_is_stable_and_canonical() -> None:
    key = tree_cache_key("resnet18")
    assert key is not None and len(key) == 64
    assert tree_cache_key("resnet18") == key
    assert tree_cache_key("resnet18", args=[]) == key
    assert tree_cache_key("resnet18", freeze=None, unfreeze=None) == key
    assert tree_cache_key("resnet18", args=["num_classes=10", "zero_init_residual=True"]) == tree_cache_key(
        "resnet18", args=["zero_init_residual=True", " num_classes=10"]
    )
    assert tree_cache_key("resnet18", freeze="conv1,bn1") == tree_cache_key("resnet18", freeze=" conv1 , bn1")


def test_key_changes_with_every_input() -> None:
    keys = [
        tree_cache_key("resnet18"),
        tree_cache_key("resnet34"),
        tree_cache_key("resnet18", args=["num_classes=10"]),
        tree_cache_key("resnet18", args=["num_classes=10.0"]),
        tree_cache_key("resnet18", freeze="conv1"),
        tree_cache_key("resnet18", freeze="bn1"),
        tree_cache_key("resnet18", unfreeze="conv1"),
        tree_cache_key("resnet18", freeze_backbone=True),
        tree_cache_key("resnet18", freeze_backbone=True, unfreeze="layer4.*"),
    ]
    assert None not in keys
    assert len(set(keys)) == len(keys)


def test_key_changes_with_package_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    for name in ("torch", "torchvision", "torchscope"):
        assert tc._dist_version(name) == importlib.metadata.version(name)
    before = tree_cache_key("resnet18")
    real = tc._dist_version
    for bumped in ("torch", "torchvision", "torchscope"):
        monkeypatch.setattr(tc, "_dist_version", lambda n, b=bumped: "99.0" if n == b else real(n))
        assert tree_cache_key("resnet18") not in (before, None)
    # a package whose version cannot be found: no key rather than a key that ignores it
    monkeypatch.setattr(tc, "_dist_version", lambda n: None if n == "torchvision" else real(n))
    assert tree_cache_key("resnet18") is None


@pytest.mark.parametrize(
    "source", ["_tree.py", "_treedata.py", "_loader/spec.py", "_loader/vision.py", "_freeze.py", "_patterns.py"]
)
def test_key_changes_when_a_source_file_changes(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tree_cache_key("resnet18")
    copy = tmp_path / "torchscope"
    shutil.copytree(Path(tc.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(tc, "_HERE", copy)
    assert tree_cache_key("resnet18") == before  # same bytes, same key
    (copy / source).write_text((copy / source).read_text() + "\n# edited\n")
    assert tree_cache_key("resnet18") not in (before, None)


@pytest.mark.parametrize(
    ("spec", "options"),
    [
        ("resnet18", {"weights": Path("ft.pt")}),
        ("resnet18", {"pretrained": True}),
        ("resnet18", {"device": "cpu"}),
        ("./net.py:Net", {}),
        ("mypkg.models:build_net", {}),
        ("timm:resnet18", {}),
        ("net.pt", {}),
        ("models/net.pt2", {}),
        ("", {}),
    ],
)
def test_key_is_none_when_the_result_is_not_a_function_of_the_key(spec: str, options: dict) -> None:  # type: ignore[type-arg]
    assert tree_cache_key(spec, **options) is None


def test_key_is_none_for_a_file_named_like_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert tree_cache_key("resnet18") is not None
    (tmp_path / "resnet18").write_bytes(b"not a model")  # the loader would load this file instead
    assert tree_cache_key("resnet18") is None


def test_key_with_a_bad_arg_is_the_loaders_error() -> None:
    with pytest.raises(TorchscopeError, match=r"--arg 'oops' must look like key=value"):
        tree_cache_key("resnet18", args=["oops"])
    with pytest.raises(PatternError, match=r"--freeze '' has an empty pattern"):
        tree_cache_key("resnet18", freeze="")
    with pytest.raises(PatternError, match=r"--unfreeze ',' has an empty pattern"):
        tree_cache_key("resnet18", unfreeze=",")


# --- storing and loading ---------------------------------------------------------------------------


def small_tree() -> ModuleTree:
    model, _ = build("small_cnn")
    return tree(model)


def test_store_then_load_is_the_same_tree() -> None:
    key = "a" * 64
    assert load_cached_tree(key) is None
    store_tree(key, small_tree())
    assert load_cached_tree(key) == small_tree()
    assert [p.name for p in entries()] == [f"{key}.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"schema": 1, "key": "KEY", "tree": {"model_type": "Net"}}',
        b'{"schema": 0, "key": "KEY", "tree": null}',
        b'{"schema": 2, "key": "KEY", "size": 2, "sha256": "00"}\n{}',
        b'{"schema": 2, "key": "KEY"}\n{}',
        b"null\n{}",
    ],
)
def test_a_damaged_entry_is_a_miss(content: bytes) -> None:
    key = "b" * 64
    (cache_dir() / "tree").mkdir(parents=True)
    (cache_dir() / "tree" / f"{key}.json").write_bytes(content.replace(b"KEY", key.encode()))
    assert load_cached_tree(key) is None


def test_an_entry_stored_under_another_key_is_a_miss() -> None:
    store_tree("c" * 64, small_tree())
    (cache_dir() / "tree" / f"{'c' * 64}.json").rename(cache_dir() / "tree" / f"{'d' * 64}.json")
    assert load_cached_tree("d" * 64) is None


def test_an_unwritable_cache_is_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # a directory below a regular file cannot be created, even by root
    monkeypatch.setenv("TORCHSCOPE_CACHE_DIR", str(blocker / "cache"))
    store_tree("e" * 64, small_tree())
    assert load_cached_tree("e" * 64) is None


# --- the CLI ---------------------------------------------------------------------------------------


def test_cli_hit_is_byte_identical_to_the_miss_and_loads_no_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cases = [
        ["tree", "resnet18", "--no-color"],
        ["tree", "resnet18", "--no-color", "--depth", "1", "--expand"],
        ["tree", "resnet18", "--json"],
        ["tree", "resnet18", "--freeze", "conv1,bn1,layer1.*", "--no-color"],
        ["tree", "resnet18", "--freeze", "conv1,bn1,layer1.*", "--json"],
    ]
    misses = []
    for case in cases:
        result = run(*case, "--svg", str(tmp_path / f"miss{len(misses)}.svg"))
        assert result.exit_code == 0, result.output
        misses.append(result.stdout)
    assert len(entries()) == 2  # one per distinct key: display options are not part of it

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cache hit must not load the model")

    monkeypatch.setattr("torchscope.cli.tree.load_cli_model", no_loading)
    for i, case in enumerate(cases):
        result = run(*case, "--svg", str(tmp_path / f"hit{i}.svg"))
        assert result.exit_code == 0, result.output
        assert result.stdout == misses[i]
        assert (tmp_path / f"hit{i}.svg").read_bytes() == (tmp_path / f"miss{i}.svg").read_bytes()
    assert "Total params:                      11.7 M" in misses[0]
    assert json.loads(misses[2]) == tree(load_model("resnet18", device="meta")).to_dict()


@pytest.mark.slow  # spawns a process
def test_cli_second_run_does_not_import_torch(tmp_path: Path) -> None:
    env = {**os.environ, "TORCHSCOPE_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "100"}
    cmd = ["tree", "resnet18", "--no-color", "--depth", "1"]
    first = subprocess.run(
        [sys.executable, "-m", "torchscope", *cmd], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    wrapper = (
        "import sys, runpy\n"
        f"sys.argv = ['torchscope', *{cmd!r}]\n"
        "try:\n"
        "    runpy.run_module('torchscope', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported on a cache hit'\n"
        "assert 'torchvision' not in sys.modules\n"
    )
    second = subprocess.run(
        [sys.executable, "-c", wrapper], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert "├── layer1" in second.stdout


def test_cli_overwrites_a_corrupt_entry() -> None:
    key = tree_cache_key("resnet18")
    assert key is not None
    path = cache_dir() / "tree" / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": 1, "key": "truncated')
    result = run("tree", "resnet18", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_params"] == 11_689_512
    cached = load_cached_tree(key)
    assert cached is not None and cached.to_dict() == json.loads(result.stdout)


def test_cli_with_an_unwritable_cache_still_works(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TORCHSCOPE_CACHE_DIR", str(blocker / "cache"))
    result = run("tree", "resnet18", "--no-color", "--depth", "1")
    assert result.exit_code == 0, result.output
    assert "Total params:                      11.7 M" in result.stdout
    assert "└── fc" in result.stdout


def test_cli_no_cache_neither_reads_nor_writes() -> None:
    result = run("tree", "resnet18", "--no-cache", "--json")
    assert result.exit_code == 0, result.output
    assert entries() == []
    # plant a forged entry under the key: --cache shows it (so reading is real), --no-cache does not
    key = tree_cache_key("resnet18")
    assert key is not None
    real = ModuleTree.from_dict(json.loads(result.stdout))
    store_tree(key, ModuleTree.from_dict({**real.to_dict(), "model_type": "Forged"}))
    assert json.loads(run("tree", "resnet18", "--json").stdout)["model_type"] == "Forged"
    result = run("tree", "resnet18", "--no-cache", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model_type"] == "ResNet"


def test_cli_uncacheable_specs_write_nothing(tmp_path: Path) -> None:
    result = run("tree", "resnet18", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    zoo_py = Path(__file__).parent / "zoo.py"
    result = run("tree", f"{zoo_py}:SmallCNN", "--json")
    assert result.exit_code == 0, result.output
    assert entries() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["resnet1800"], "unknown model 'resnet1800'"),
        (["resnet18", "--freeze", "nosuchlayer"], "nosuchlayer"),
        (["resnet18", "--arg", "oops"], "--arg 'oops' must look like key=value"),
        (["resnet18", "--depth", "-1"], "depth=-1 must be >= 0"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_never_cached(args: list[str], message: str) -> None:
    for _ in range(2):  # the second run must fail the same way: nothing was cached by the first
        result = run("tree", *args)
        assert result.exit_code == 2, result.output
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert entries() == []


def test_cli_grep_matching_nothing_fails_on_a_hit_too() -> None:
    assert run("tree", "resnet18", "--json").exit_code == 0
    assert len(entries()) == 1
    result = run("tree", "resnet18", "--grep", "nosuchmodule")
    assert result.exit_code == 2, result.output
    assert "nosuchmodule" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- a cache that cannot lie -----------------------------------------------------------------------


def resnet18_entry() -> tuple[str, Path]:
    """Run `tree resnet18` once (a miss that stores the entry); its key and file."""
    assert run("tree", "resnet18", "--json").exit_code == 0
    key = tree_cache_key("resnet18")
    assert key is not None
    path = cache_dir() / "tree" / f"{key}.json"
    assert path.is_file()
    return key, path


@pytest.mark.parametrize(
    ("old", "new", "lie"),
    [
        (b'"total_params":11689512', b'"total_params":999', "999"),
        (b'"model_type":"ResNet"', b'"model_type":"HACKED"', "HACKED"),
    ],
)
def test_an_edited_entry_is_not_shown_and_gets_repaired(old: bytes, new: bytes, lie: str) -> None:
    key, path = resnet18_entry()
    good = path.read_bytes()
    assert old in good
    path.write_bytes(good.replace(old, new))
    result = run("tree", "resnet18", "--no-color")
    assert result.exit_code == 0, result.output
    assert lie not in result.stdout
    assert "Total params:                      11.7 M" in result.stdout
    assert "ResNet" in result.stdout
    assert path.read_bytes() == good  # rebuilt and rewritten
    cached = load_cached_tree(key)
    assert cached is not None and cached.total_params == 11_689_512


def test_an_edit_that_keeps_the_size_and_fixes_the_header_size_is_still_caught() -> None:
    key, path = resnet18_entry()
    header, _, body = path.read_bytes().partition(b"\n")
    forged = body.replace(b'"total_params":11689512', b'"total_params":99999999')
    assert len(forged) == len(body)
    path.write_bytes(header + b"\n" + forged)
    assert load_cached_tree(key) is None


def test_an_entry_copied_to_another_keys_file_is_a_miss() -> None:
    key, path = resnet18_entry()
    other = tree_cache_key("resnet18", args=["num_classes=10"])
    assert other is not None and other != key
    # the header says which key it answers; rewrite that too: the checksum covers the key
    header, _, body = path.read_bytes().partition(b"\n")
    (path.parent / f"{other}.json").write_bytes(header.replace(key.encode(), other.encode()) + b"\n" + body)
    assert load_cached_tree(other) is None
    result = run("tree", "resnet18", "--arg", "num_classes=10", "--json")
    assert json.loads(result.stdout)["total_params"] == 11_181_642


def test_an_oversized_entry_is_not_read_and_gets_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    key, path = resnet18_entry()
    good = path.read_bytes()
    with open(path, "wb") as fh:  # 80 MB: a valid header, then junk
        fh.write(good.partition(b"\n")[0] + b"\n")
        for _ in range(80):
            fh.write(b" " * (1 << 20))
    assert path.stat().st_size > 80 * (1 << 20) > MAX_ENTRY_BYTES
    # what the loader reads of it, counted at the file (the time it takes: benchmarks/cache_guards.py)
    sizes: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, fh):  # type: ignore[no-untyped-def]
            self.fh = fh

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def read(self, n: int = -1) -> bytes:
            data: bytes = self.fh.read(n)
            sizes.append(len(data))
            return data

    with monkeypatch.context() as patch:
        patch.setattr(tc, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False)
        assert load_cached_tree(key) is None
    assert sizes == [MAX_ENTRY_BYTES + 1]  # one bounded read, not the 80 MB
    result = run("tree", "resnet18", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["total_params"] == 11_689_512
    assert path.read_bytes() == good


def test_the_checksum_covers_key_and_body() -> None:
    key, path = resnet18_entry()
    header, _, body = path.read_bytes().partition(b"\n")
    doc = json.loads(header)
    assert doc["sha256"] == hashlib.sha256(key.encode() + b"\0" + body).hexdigest()
    assert doc["size"] == len(body) and doc["key"] == key


# --- an unusable cache directory -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["~nosuchuser/x", "~nosuchuser"])
def test_an_unresolvable_cache_dir_skips_the_cache_with_one_warning(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import torchscope._paths as paths

    monkeypatch.setattr(paths, "_warned", set())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCHSCOPE_CACHE_DIR", value)
    with pytest.raises(CacheDirError, match=r"TORCHSCOPE_CACHE_DIR='~nosuchuser.*' names no known user"):
        cache_dir()
    for _ in range(2):
        result = run("tree", "resnet18", "--no-color", "--depth", "1")
        assert result.exit_code == 0, result.output
        assert "Total params:                      11.7 M" in result.stdout
        assert "Traceback" not in result.output
    # one warning for the whole process, not one per read and write
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: TORCHSCOPE_CACHE_DIR={value!r} names no known user's home; set it to a writable folder; "
        "running without the cache"
    ]
    assert list(tmp_path.iterdir()) == []  # no folder named "~nosuchuser" in the working directory


@pytest.mark.slow  # spawns a process
def test_an_unresolvable_cache_dir_warns_once_in_a_fresh_process(tmp_path: Path) -> None:
    env = {**os.environ, "TORCHSCOPE_CACHE_DIR": "~nosuchuser/x", "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-m", "torchscope", "tree", "resnet18", "--depth", "1", "--no-color"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Total params" in done.stdout
    assert done.stderr.strip().splitlines() == [
        "warning: TORCHSCOPE_CACHE_DIR='~nosuchuser/x' names no known user's home; set it to a writable "
        "folder; running without the cache"
    ]
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_cache_dir_says_so_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import torchscope._paths as paths

    monkeypatch.setattr(paths, "_warned", set())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TORCHSCOPE_CACHE_DIR", str(blocker / "cache"))
    result = run("tree", "resnet18", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_params"] == 11_689_512
    assert run("tree", "resnet18", "--json").exit_code == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("warning: cannot write the tree cache in "), warnings
