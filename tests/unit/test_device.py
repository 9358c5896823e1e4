"""``[model] device`` of the network: "cpu" (default), "cuda", "auto" (cuda where a GPU is present).

CI has no GPU: what is tested is the refusal of "cuda" (a one-line error naming the key, exit
status 2, nothing written), that "auto" picks the CPU here, and that a run with "auto" trains.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from flowsim._validation import ParamError  # noqa: E402
from flowsim.cli import main  # noqa: E402
from flowsim.model.parameterisations.network import Network, resolve_device  # noqa: E402

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: cuda is not refused")

FILE = """name = "dev"
[model]
kind = "network"
reference = "initial"
sft = "chosen"
sft_steps = 2
device = "{device}"
[loss]
kind = "dpo"
beta = 0.5
[dynamics]
kind = "gd"
gd = {{ lr = 0.05 }}
[stop]
max_steps = 3
"""


@no_gpu
def test_cuda_without_a_gpu_is_refused_naming_the_key():
    with pytest.raises(ParamError, match=r"^device needs a GPU") as err:
        Network(device="cuda")
    assert err.value.key == "device"


@pytest.mark.parametrize("bad", ["gpu", "CUDA", 0])
def test_a_device_is_one_of_three(bad):
    with pytest.raises(ParamError, match="device"):
        Network(device=bad)


@no_gpu
def test_auto_is_the_cpu_here():
    assert Network(device="auto").device == "auto"
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"


@no_gpu
def test_the_cli_refuses_cuda_in_one_line_with_exit_2(tmp_path, capsys):
    path, out = tmp_path / "dev.toml", tmp_path / "out"
    path.write_text(FILE.format(device="cuda"))
    assert main(["run", str(path), "--out", str(out), "--quiet", "--n-jobs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "device" in err and "GPU" in err, err
    assert not out.exists()


@pytest.mark.slow
def test_a_run_on_auto_trains(tmp_path):
    path, out = tmp_path / "dev.toml", tmp_path / "out"
    path.write_text(FILE.format(device="auto"))
    assert main(["run", str(path), "--out", str(out), "--quiet", "--n-jobs", "1"]) == 0
    assert (out / "flows.csv").exists()
