"""tinytensor.io: exact safetensors round trips, atomic writes, and checkpoints that survive crashes and say what
is wrong with a damaged file."""
import ast
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinytensor as tt
from tinytensor import io
from tinytensor.optim import AdamW
from tinytensor.optim.lr_scheduler import WarmupCosineLR

REPO = Path(__file__).resolve().parents[1]


# ---- tensor files ---------------------------------------------------------------------------------------------
@given(arrays=st.dictionaries(
    st.text("abc./_", min_size=1, max_size=8),
    hnp.arrays(st.sampled_from([np.float16, np.float32, np.float64, np.int64, np.bool_]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
    max_size=4))
def test_save_then_load_is_bit_exact_for_every_dtype(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("io") / "t.safetensors"
    io.save({name: tt.tensor(a) for name, a in arrays.items()}, path)
    loaded = io.load(path)
    assert set(loaded) == set(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        assert loaded[name].data.tobytes() == array.tobytes()


def test_metadata_round_trips_as_json_and_plain_strings_stay_plain(tmp_path):
    path = tmp_path / "m.safetensors"
    metadata = {"format": "pt", "step": 12, "lr": 3e-4, "config": {"n_layer": 2, "names": ["a", "b"]}}
    io.save({"w": np.ones(2, np.float32)}, path, metadata=metadata)
    assert io.load_metadata(path) == metadata
    with safetensors.safe_open(str(path), framework="numpy") as file:
        assert file.metadata()["format"] == "pt"  # what transformers checks


def test_saving_copies_arrays_and_leaves_the_model_where_it_is(tmp_path, device):
    weight = tt.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device=device, requires_grad=True)
    array_before = weight.data
    io.save({"w": weight}, tmp_path / "w.safetensors")
    io.save_checkpoint(tmp_path / "ckpt", {"w": weight})
    assert weight.data is array_before and weight.device == device and weight.requires_grad
    np.testing.assert_array_equal(weight.numpy(), np.arange(6).reshape(2, 3))
    loaded = io.load(tmp_path / "w.safetensors")["w"]
    assert loaded.device == "cpu" and io.load_checkpoint(tmp_path / "ckpt", device=device).model["w"].device == device
    loaded.data[0, 0] = 100.0  # loaded arrays are writable and independent of the model's
    assert weight.numpy()[0, 0] == 0


def test_non_contiguous_arrays_are_saved_in_logical_order(tmp_path):
    array = np.arange(12.0).reshape(3, 4).T
    io.save({"t": array}, tmp_path / "t.safetensors")
    np.testing.assert_array_equal(io.load(tmp_path / "t.safetensors")["t"].data, array)


def test_load_of_a_truncated_file_names_the_file(tmp_path):
    path = tmp_path / "t.safetensors"
    io.save({"w": np.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(io.CheckpointError, match="t.safetensors.*truncated or corrupted"):
        io.load(path)


def test_load_of_a_missing_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        io.load(tmp_path / "nope.safetensors")


# ---- atomic writes --------------------------------------------------------------------------------------------
def test_atomic_write_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "f.txt"
    io.atomic_write_text(path, "old")

    def half_then_crash(file):
        file.write(b"new but incomple")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        io.atomic_write(path, half_then_crash)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_write_creates_files_with_the_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    io.atomic_write_bytes(tmp_path / "b", b"x")
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o666 & ~umask


# ---- checkpoints ----------------------------------------------------------------------------------------------
def train_a_little(steps, params=None, optimizer=None, scheduler=None):
    rng = np.random.default_rng(0)
    if params is None:
        params = {"w": tt.tensor(rng.normal(size=(3, 2)), requires_grad=True),
                  "b": tt.tensor(np.zeros(2), requires_grad=True)}
        optimizer = AdamW([{"params": [params["w"]]}, {"params": [params["b"]], "weight_decay": 0.0}], lr=0.1)
        scheduler = WarmupCosineLR(optimizer, warmup_steps=2, decay_steps=20, min_lr=0.01)
    x = tt.tensor(rng.normal(size=(5, 3)))
    for _ in range(steps):
        loss = ((x @ params["w"] + params["b"]) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    return params, optimizer, scheduler


def test_checkpoint_round_trip_resumes_training_exactly(tmp_path):
    params, optimizer, scheduler = train_a_little(4)
    tt.manual_seed(7)
    config = {"n_embd": 3, "dropout": 0.0}
    io.save_checkpoint(tmp_path / "ckpt", params, optimizer.state_dict(), scheduler.state_dict(),
                       rng_state=tt.get_rng_state(), config=config, step=4, extra={"best_val_loss": 1.5})
    draws = tt.randn(4).data

    ckpt = io.load_checkpoint(tmp_path / "ckpt")
    assert (ckpt.step, ckpt.config, ckpt.extra) == (4, config, {"best_val_loss": 1.5})
    tt.set_rng_state(ckpt.rng)
    np.testing.assert_array_equal(tt.randn(4).data, draws)  # the generator resumes where it was saved
    resumed = {name: tt.tensor(t.data.copy(), requires_grad=True) for name, t in ckpt.model.items()}
    resumed_optimizer = AdamW([{"params": [resumed["w"]]}, {"params": [resumed["b"]], "weight_decay": 0.0}], lr=1.0)
    resumed_optimizer.load_state_dict(ckpt.optimizer)
    resumed_scheduler = WarmupCosineLR(resumed_optimizer, warmup_steps=2, decay_steps=20, min_lr=0.01)
    resumed_scheduler.load_state_dict(ckpt.scheduler)

    train_a_little(5, params, optimizer, scheduler)
    train_a_little(5, resumed, resumed_optimizer, resumed_scheduler)
    for name in params:
        np.testing.assert_array_equal(resumed[name].data, params[name].data)


def test_a_dataclass_config_is_stored_as_a_dict(tmp_path):
    @dataclasses.dataclass
    class Config:
        n_layer: int = 2
        dropout: float = 0.1

    io.save_checkpoint(tmp_path, {"w": np.ones(1)}, config=Config())
    assert io.load_checkpoint(tmp_path).config == {"n_layer": 2, "dropout": 0.1}


def test_checkpoint_directory_holds_the_record_and_one_tensors_file(tmp_path):
    for step in range(3):
        io.save_checkpoint(tmp_path, {"w": np.full(3, float(step))}, step=step)
    names = sorted(p.name for p in tmp_path.iterdir())
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    assert names == sorted(["checkpoint.json", record["tensors_file"]])
    assert record["tensors"] == {"model/w": {"dtype": "float64", "shape": [3]}} and record["format_version"] == 1


def test_a_config_that_is_not_json_fails_before_touching_the_last_checkpoint(tmp_path):
    io.save_checkpoint(tmp_path, {"w": np.ones(2)}, step=1)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(TypeError, match="not JSON serialisable"):
        io.save_checkpoint(tmp_path, {"w": np.zeros(2)}, config={"f": print}, step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and io.load_checkpoint(tmp_path).step == 1


def tensors_file(directory: Path) -> Path:
    return directory / json.loads((directory / "checkpoint.json").read_text())["tensors_file"]


def test_flipped_byte_in_the_tensors_file_gives_a_checksum_error_naming_it(tmp_path):
    io.save_checkpoint(tmp_path, {"w": np.ones(64)})
    path = tensors_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(io.CheckpointError, match=rf"{path.name}: SHA-256 checksum mismatch"):
        io.load_checkpoint(tmp_path)


def test_truncated_tensors_file_is_reported_naming_it(tmp_path):
    io.save_checkpoint(tmp_path, {"w": np.ones(64)})
    path = tensors_file(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(io.CheckpointError, match=rf"{path.name}.*truncated or corrupted"):
        io.load_checkpoint(tmp_path)


def test_corrupted_record_is_reported_naming_it(tmp_path):
    io.save_checkpoint(tmp_path, {"w": np.ones(2)})
    (tmp_path / "checkpoint.json").write_text('{"format": "tinytensor-checkpoint", "step"')
    with pytest.raises(io.CheckpointError, match="checkpoint.json: not valid JSON: .* at line 1, column 43"):
        io.load_checkpoint(tmp_path)


def test_record_that_lists_other_tensors_is_reported(tmp_path):
    io.save_checkpoint(tmp_path, {"w": np.ones(2)})
    record = json.loads((tmp_path / "checkpoint.json").read_text())
    record["tensors"]["model/w"]["dtype"] = "float32"
    (tmp_path / "checkpoint.json").write_text(json.dumps(record))
    with pytest.raises(io.CheckpointError, match=r"does not hold the tensors checkpoint.json lists.*model/w"):
        io.load_checkpoint(tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint.json does not exist"):
        io.load_checkpoint(tmp_path / "nowhere")
    io.save_checkpoint(tmp_path, {"w": np.ones(2)})
    tensors_file(tmp_path).unlink()
    with pytest.raises(FileNotFoundError, match=r"checkpoint-[0-9a-f]{16}\.safetensors"):
        io.load_checkpoint(tmp_path)


def test_check_compatible_lists_missing_unexpected_shape_and_dtype_problems(tmp_path):
    io.save_checkpoint(tmp_path, {"a": np.ones(2), "b": np.ones((2, 2)), "c": np.ones(3), "old": np.ones(1)})
    ckpt = io.load_checkpoint(tmp_path)
    model = {"a": np.ones(2), "b": np.ones((2, 3)), "c": np.ones(3, np.float32), "new": np.ones(1)}
    with pytest.raises(io.CheckpointError) as error:
        io.check_compatible(ckpt, model)
    message = str(error.value)
    for fragment in ("missing from the checkpoint: ['new']", "not in the model: ['old']",
                     "b: checkpoint shape (2, 2), model shape (2, 3)", "c: checkpoint dtype float64", str(tmp_path)):
        assert fragment in message
    io.check_compatible(ckpt, {"a": np.ones(2), "b": np.ones((2, 2)), "c": np.ones(3), "old": np.ones(1)})


CHILD = """
import sys
import numpy as np
from tinytensor.io import save_checkpoint
path, step = sys.argv[1], int(sys.argv[2])
big, small = np.zeros(4_000_000, np.float32), np.zeros(3, np.int64)
print("ready", flush=True)
while True:  # nearly all the time goes into save_checkpoint, so a kill usually lands inside it
    step += 1
    big.fill(step)
    small.fill(step)
    save_checkpoint(path, {"big": big, "small": small}, step=step)
"""


def test_killing_a_process_mid_save_never_leaves_an_unreadable_checkpoint(tmp_path):
    """A child saves a 16 MB checkpoint over and over; SIGKILL at random moments; each time the path loads, with a
    tensors file that matches its record (old or new, never a mix), and the step never goes backwards."""
    directory = tmp_path / "latest"
    io.save_checkpoint(directory, {"big": np.zeros(4_000_000, np.float32), "small": np.zeros(3, np.int64)}, step=0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    moments, last_step = random.Random(0), 0
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), str(last_step)],
                                 stdout=subprocess.PIPE, env=env)
        assert child.stdout.readline().strip() == b"ready"
        child.stdout.close()
        time.sleep(moments.uniform(0.02, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        ckpt = io.load_checkpoint(directory)
        assert ckpt.step >= last_step
        assert (ckpt.model["big"].data == ckpt.step).all() and (ckpt.model["small"].data == ckpt.step).all()
        last_step = ckpt.step
    io.save_checkpoint(directory, {"w": np.ones(1)}, step=last_step + 1)
    assert len(list(directory.iterdir())) == 2  # the next save sweeps files left by the killed writers


def test_a_crash_between_the_tensors_file_and_the_record_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    io.save_checkpoint(tmp_path, {"w": np.ones(2)}, step=1)

    def crash_before_commit(*args, **kwargs):
        raise SystemExit("power cut")

    monkeypatch.setattr(io, "atomic_write_text", crash_before_commit)
    with pytest.raises(SystemExit):
        io.save_checkpoint(tmp_path, {"w": np.zeros(2)}, step=2)
    assert len(list(tmp_path.glob("checkpoint-*.safetensors"))) == 2  # the new tensors file was written...
    ckpt = io.load_checkpoint(tmp_path)  # ...but the record still names the old one
    assert ckpt.step == 1 and (ckpt.model["w"].data == 1).all()


# ---- no pickle ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module", ["tinytensor/io.py", "tinytensor/optim"])
def test_no_pickle_anywhere_in_saving_and_loading(module):
    files = [REPO / module] if module.endswith(".py") else sorted((REPO / module).glob("*.py"))
    for file in files:
        source = file.read_text(encoding="utf-8")
        imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source))
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        assert not imported & {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal"}, file
        assert "allow_pickle" not in source, file


def test_string_only_metadata_is_written_exactly_as_given(tmp_path):
    path = tmp_path / "model.safetensors"
    io.save({"w": np.zeros(2, dtype=np.float32)}, path, metadata={"format": "pt"})
    with safetensors.safe_open(str(path), framework="numpy") as file:
        assert file.metadata() == {"format": "pt"}
    assert io.load_metadata(path) == {"format": "pt"}


def test_a_reader_racing_a_writer_loads_the_newer_commit_instead_of_failing(tmp_path, monkeypatch):
    """The writer commits checkpoint B (and deletes A's tensors file) after the reader has read A's record."""
    directory = tmp_path / "ckpt"
    io.save_checkpoint(directory, {"w": np.zeros(2, dtype=np.float32)}, step=1)
    original_read_bytes = io.read_bytes
    committed = []

    def commit_then_read(path, hint=""):
        if not committed:
            committed.append(True)
            io.save_checkpoint(directory, {"w": np.ones(2, dtype=np.float32)}, step=2)
        return original_read_bytes(path, hint)

    monkeypatch.setattr(io, "read_bytes", commit_then_read)
    checkpoint = io.load_checkpoint(directory)
    assert checkpoint.step == 2 and checkpoint.model["w"].numpy().tolist() == [1.0, 1.0]
