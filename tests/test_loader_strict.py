"""The meta path is as strict as a real run, and bad files are exit 2, never exit 3.

Each case is written the way a user hits it (``torchscope summary resnet18 --weights bad.safetensors
--device meta``): one line on stderr that names the value and the fix, exit 2, nothing on stdout,
and the same verdict on meta as on the CPU.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from torchscope import TorchscopeError, diff_checkpoints, load_model
from torchscope._loader import load_weights
from torchscope._loader.safetensors_io import read_header

st = pytest.importorskip("safetensors.torch")


def one_line_exit_2(result: object) -> str:
    """The single error line of a refused command (and proof that nothing else was printed)."""
    assert result.exit_code == 2, (result.exit_code, result.stderr)  # type: ignore[attr-defined]
    assert result.stdout == "", result.stdout  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]
    return lines[0]


def raw_safetensors(path: Path, header: dict[str, object], data: bytes = b"") -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


NET_PY = """\
from torch import nn


def build():
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
"""


@pytest.fixture
def net_py(tmp_path: Path) -> str:
    (tmp_path / "net.py").write_text(NET_PY)
    return f"{tmp_path / 'net.py'}:build"


def saved(tmp_path: Path) -> tuple[Path, bytes, dict[str, object]]:
    """net.py's weights as a safetensors file, its bytes and its parsed header."""
    file = tmp_path / "good.safetensors"
    st.save_file({k: v.contiguous() for k, v in small_net().state_dict().items()}, str(file))
    raw = file.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return file, raw, json.loads(raw[8 : 8 + n])


# ---------------------------------------------------------------------------------------------
# safetensors headers: the same verdict on meta and on the CPU


def _truncated(tmp_path: Path) -> Path:
    _, raw, _ = saved(tmp_path)
    out = tmp_path / "half.safetensors"
    out.write_bytes(raw[: len(raw) - 20])
    return out


def _overlapping(tmp_path: Path) -> Path:
    _, raw, header = saved(tmp_path)
    (n,) = struct.unpack("<Q", raw[:8])
    entries: dict[str, dict[str, list[int]]] = {k: v for k, v in header.items() if k != "__metadata__"}  # type: ignore[misc]
    # every tensor's bytes start at 0: sizes stay right, only the layout is wrong
    bent = {k: dict(v, data_offsets=[0, v["data_offsets"][1] - v["data_offsets"][0]]) for k, v in entries.items()}
    return raw_safetensors(tmp_path / "overlap.safetensors", bent, raw[8 + n :])


def _negative_dim(tmp_path: Path) -> Path:
    return raw_safetensors(tmp_path / "neg.safetensors", {"0.weight": {"dtype": "F32", "shape": [-3, 4], "data_offsets": [0, 0]}})


def _zero_bytes_for_40_gb(tmp_path: Path) -> Path:
    header = {"0.weight": {"dtype": "F32", "shape": [100_000, 100_000], "data_offsets": [0, 0]}}
    return raw_safetensors(tmp_path / "huge.safetensors", header)


def _unknown_dtype(tmp_path: Path) -> Path:
    return raw_safetensors(tmp_path / "dt.safetensors", {"0.weight": {"dtype": "F33", "shape": [3, 4], "data_offsets": [0, 48]}}, bytes(48))


def _trailing_bytes(tmp_path: Path) -> Path:
    _, raw, _ = saved(tmp_path)
    out = tmp_path / "tail.safetensors"
    out.write_bytes(raw + bytes(16))
    return out


HEADER_CASES = {
    "truncated": (_truncated, r"lies outside the file \(truncated\?"),
    "overlapping": (_overlapping, r"overlaps tensor '"),
    "negative dim": (_negative_dim, r"tensor '0\.weight' has shape \[-3, 4\]: dimensions must be integers >= 0"),
    "0 bytes for 40 GB": (_zero_bytes_for_40_gb, r"has 0 B \(data_offsets \[0, 0\]\) for shape \[100000, 100000\] F32, which takes 37\.3 GiB"),
    "unknown dtype": (_unknown_dtype, r"has dtype 'F33', which torchscope cannot read"),
    "bytes after the last tensor": (_trailing_bytes, r"has 16 bytes after its last tensor"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_damaged_safetensors_file_is_refused_on_meta_as_on_the_cpu(
    cli, tmp_path: Path, net_py: str, case: str, device: str
) -> None:
    make, match = HEADER_CASES[case]
    file = make(tmp_path)
    before = file.read_bytes()
    line = one_line_exit_2(cli("summary", net_py, "--weights", file, "--input-size", "1,4", "--device", device))
    assert str(file) in line
    assert re.search(match, line), line
    # a damaged file says how to get a good one; a dtype it cannot read says so, and that is all
    if case == "unknown dtype":
        assert "copy or save it again" not in line
    else:
        assert line.endswith("copy or save it again"), line
    assert file.read_bytes() == before


@pytest.mark.parametrize("case", ["negative dim", "overlapping", "0 bytes for 40 GB"])
def test_diff_refuses_the_same_headers(cli, tmp_path: Path, case: str) -> None:
    good, _, _ = saved(tmp_path)
    make, match = HEADER_CASES[case]
    assert re.search(match, one_line_exit_2(cli("diff", good, make(tmp_path))))


def test_the_header_is_checked_before_anything_is_allocated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0-byte tensor whose shape asks for 40 GB: refused before torch is asked for any memory."""
    asked: list[tuple[object, ...]] = []
    real_empty = torch.empty

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        asked.append(args)
        return real_empty(*args, **kwargs)  # type: ignore[arg-type]

    file = _zero_bytes_for_40_gb(tmp_path)
    model = nn.Sequential(nn.Linear(100_000, 100_000, device="meta"))
    monkeypatch.setattr(torch, "empty", spy)
    for device in ("cpu", "meta"):
        with pytest.raises(TorchscopeError, match=r"which takes 37\.3 GiB"):
            load_weights(model, file, map_location=device)
    assert asked == []


def test_a_good_file_still_loads_and_agrees_with_the_safetensors_package(tmp_path: Path, net_py: str) -> None:
    good, _, _ = saved(tmp_path)
    model = load_model(net_py, weights=good)
    for name, t in st.load_file(str(good)).items():
        assert torch.equal(model.state_dict()[name], t), name
    assert set(read_header(good)) == set(small_net().state_dict())


def test_the_format_readers_verdicts_match_ours(tmp_path: Path) -> None:
    """Every header case the format's own reader refuses, ours refuses too (and the good file passes both)."""
    from safetensors import safe_open

    cases = {name: make(tmp_path) for name, (make, _) in HEADER_CASES.items() if name != "unknown dtype"}
    cases["good"] = saved(tmp_path)[0]
    for name, file in cases.items():
        try:
            with safe_open(str(file), "pt") as fh:
                for key in fh.keys():  # safe_open has no __iter__
                    fh.get_slice(key)
            theirs = True
        except Exception:
            theirs = False
        try:
            read_header(file)
            ours = True
        except TorchscopeError:
            ours = False
        assert ours == theirs, name


# ---------------------------------------------------------------------------------------------
# torch.save files: records of the wrong size, pickles that contain code


def _shortened_record(tmp_path: Path) -> Path:
    """A state_dict whose first tensor's record is cut short, with a CRC that matches the short bytes."""
    src = tmp_path / "sd.pt"
    torch.save(small_net().state_dict(), src)
    out = tmp_path / "short.pt"
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as b:
        for info in a.infolist():
            data = a.read(info)
            b.writestr(info, data[:8] if info.filename.endswith("/data/0") else data)
    return out


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_a_record_shorter_than_its_index_says_is_refused(cli, tmp_path: Path, net_py: str, device: str) -> None:
    """torch.load(mmap=True) would read the missing bytes from the next records: wrong values, no error."""
    file = _shortened_record(tmp_path)
    line = one_line_exit_2(cli("summary", net_py, "--weights", file, "--input-size", "1,4", "--device", device))
    assert "the bytes of tensor '0.weight'" in line and "it has 8 bytes, the index says 48" in line
    # --no-verify skips the CRC-32s, not this: a load would be wrong
    again = one_line_exit_2(cli("tree", net_py, "--weights", file, "--no-verify"))
    assert "the index says 48" in again and "--no-verify" not in again


class _Calls:
    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


@pytest.fixture
def code_pickles(tmp_path: Path) -> dict[str, Path]:
    marker = tmp_path / "pwned"
    files: dict[str, Path] = {}
    for name, obj, kwargs in [
        ("os_system", {"0.weight": _Calls(os.system, f"touch {marker}")}, {}),
        ("eval", {"0.weight": _Calls(eval, "1 + 1")}, {}),
        ("subprocess", {"0.weight": _Calls(subprocess.check_output, ["true"])}, {}),
        ("protocol_4", {"0.weight": _Calls(os.system, f"touch {marker}")}, {"pickle_protocol": 4}),
        ("legacy", {"0.weight": _Calls(os.system, f"touch {marker}")}, {"_use_new_zipfile_serialization": False}),
    ]:
        files[name] = tmp_path / f"{name}.pt"
        torch.save(obj, files[name], **kwargs)
    return files


CALLS = {"os_system": "posix.system", "eval": "eval", "subprocess": "subprocess.check_output",
         "protocol_4": "posix.system", "legacy": "posix.system"}  # fmt: skip


@pytest.mark.parametrize("which", sorted(CALLS))
def test_a_pickle_that_calls_code_is_said_to_contain_code(
    cli, tmp_path: Path, net_py: str, code_pickles: dict[str, Path], which: str
) -> None:
    file = code_pickles[which]
    good = tmp_path / "good.pt"
    torch.save(small_net().state_dict(), good)
    expected = f"{file} contains code: its pickle calls {CALLS[which]} when it is loaded"
    for args in (["tree", net_py, "--weights", file], ["tree", file], ["diff", good, file]):
        line = one_line_exit_2(cli(*args))
        assert expected in line and "pass --unsafe-load (unsafe_load=True) only if you trust the file" in line
        assert "damaged" not in line
    assert not (tmp_path / "pwned").exists()


def test_a_code_free_protocol_4_file_is_not_called_damaged(cli, tmp_path: Path, net_py: str) -> None:
    file = tmp_path / "p4.pt"
    torch.save(small_net().state_dict(), file, pickle_protocol=4)
    line = one_line_exit_2(cli("tree", net_py, "--weights", file))
    assert "uses pickle features that torch.load(weights_only=True) does not read" in line and "damaged" not in line
    assert cli("tree", net_py, "--weights", file, "--unsafe-load").exit_code == 0


def test_the_python_api_says_the_same(tmp_path: Path, code_pickles: dict[str, Path]) -> None:
    with pytest.raises(TorchscopeError, match=r"contains code: its pickle calls posix\.system"):
        load_weights(small_net(), code_pickles["os_system"])
    with pytest.raises(TorchscopeError, match=r"contains code: its pickle calls eval"):
        diff_checkpoints(code_pickles["eval"], code_pickles["eval"])


# ---------------------------------------------------------------------------------------------
# parameters split between meta and a real device

SPLIT_PY = """\
from torch import nn


def split():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model[2].to("meta")
    return model


def all_meta():
    return nn.Sequential(nn.Linear(4, 3, device="meta"), nn.ReLU(), nn.Linear(3, 2, device="meta"))


instance = split()
"""


@pytest.fixture
def split_py(tmp_path: Path) -> Path:
    (tmp_path / "split.py").write_text(SPLIT_PY)
    return tmp_path / "split.py"


@pytest.mark.parametrize("attr", ["split", "instance"])
def test_a_model_split_between_meta_and_cpu_is_exit_2_on_a_real_device(cli, split_py: Path, attr: str) -> None:
    for command in (["tree", f"{split_py}:{attr}", "--device", "cpu"], ["summary", f"{split_py}:{attr}", "--device", "cpu", "--input-size", "1,4"]):
        line = one_line_exit_2(cli(*command))
        assert (
            f"{split_py}:{attr} built a model with 2 of 4 tensors on the meta device ([2.weight, 2.bias]; the rest on "
            "cpu), which a cpu run cannot use: create them on a real device in the model code, give --weights FILE "
            "that holds them, or pass --device meta"
        ) in line
    assert cli("tree", f"{split_py}:{attr}", "--device", "meta").exit_code == 0


def test_a_model_all_on_meta_says_so(cli, split_py: Path) -> None:
    line = one_line_exit_2(cli("tree", f"{split_py}:all_meta", "--device", "cpu"))
    assert "2 of 4 tensors" not in line and "4 of 4 tensors on the meta device" in line and "no real tensor at all" in line


@pytest.mark.parametrize("attr", ["split", "instance", "all_meta"])
def test_weights_that_cover_the_meta_tensors_make_it_whole(cli, tmp_path: Path, split_py: Path, attr: str) -> None:
    weights = tmp_path / "w.pt"
    torch.save(small_net().state_dict(), weights)
    model = load_model(f"{split_py}:{attr}", weights=weights)
    assert not any(t.is_meta for t in model.state_dict().values())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in small_net().state_dict().items())
    assert cli("summary", f"{split_py}:{attr}", "--weights", weights, "--device", "cpu", "--input-size", "1,4").exit_code == 0


def test_load_weights_into_a_split_model_loads_every_tensor(tmp_path: Path) -> None:
    """Copying into a meta tensor does nothing, silently: the meta part takes the file's tensors instead."""
    weights = tmp_path / "w.pt"
    torch.save(small_net().state_dict(), weights)
    model = small_net()
    model[2].to("meta")
    load_weights(model, weights)
    assert all(not t.is_meta and torch.equal(t, small_net().state_dict()[k]) for k, t in model.state_dict().items())
