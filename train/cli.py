"""The one command layer of every trainer: flags from the config dataclasses, settings, run directories, one `main`.

Layer: the top of `train/`; each trainer (gpt_char, lm, mlm, finetune, translate) is a `Task` subclass that says
what differs (its models, presets, data, tokenizer, and what it prints at the end), and `Task.main` does the rest
the same way for all of them:

1. Flags. Every field declared with `train.settings.setting` (TrainConfig's and the task's own settings) and every
   scalar field of the chosen model's config is a flag (`n_layer` → `--n-layer`), parsed as its type and checked
   against its domain as it is parsed. The model is found first (`--model`, the `--init-from` directory or the
   run being resumed), so `--help` lists that model's fields with their domains.
2. Settings: the preset, then the saved run (on --resume), then the flags the user gave. On --resume a flag that
   shapes the model or the data must equal the saved value; only the settings marked resumable may change.
3. Checks before anything is written: --out (train/rundir.py), the device, then the task's `prepare` (corpus,
   tokenizer, model, data splits long enough for the block, ...).
4. The run: the directory's lock, the initial commit (checkpoint 0) or the resumed checkpoint, the shared loop
   (train/loop.py), then the task's `finish` (exports, scores, samples).

One error policy: a mistake the user can fix (`USER_ERRORS`) is one line on stderr naming the flag, file or value
and what is allowed, exit status 2, nothing written; a non-finite loss stops the run with exit status 1 and the
last good checkpoint kept; Ctrl-C saves and exits with 130; anything else is a bug in our code and a traceback.
"""
from __future__ import annotations

import abc
import argparse
import dataclasses
import importlib
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import tinytensor as tt
import tinytensor.distributed as dist
import tinytensor.io as tio
from train.corpus import CorpusError, CorpusUnavailableError
from train.loop import NonFiniteLossError, Trainer, TrainConfig, default_loss, init_distributed
from train.rundir import RunDirectory, RunDirectoryError
from train.settings import (ANY, MODEL_FIELD_DOMAINS, Domain, SettingError, check_value, domain_of, parse_flag_value,
                            scalar_type)


class CommandError(ValueError):
    """A mistake in how a command was called that the user can fix (the message says how)."""


USER_ERRORS = (CommandError, SettingError, RunDirectoryError, CorpusError, CorpusUnavailableError,
               tio.FileFormatError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
               tt.backend.DeviceUnavailableError, dist.RankMismatchError, dist.CollectiveTimeoutError)


@dataclass(frozen=True)
class Flag:
    """One setting as a flag: its type, domain, help line, whether --resume may change it, and where it goes."""

    name: str
    kind: type
    domain: Domain | None
    help: str
    resumable: bool
    group: str  # "task", "train" or "model"


@dataclass
class Run:
    """One invocation, resolved and prepared: what the task's `prepare` fills in and the Trainer consumes."""

    args: argparse.Namespace
    model_name: str
    settings: dict                   # task and train settings, resolved (preset → saved → flags)
    model_flags: dict                # model-config fields the preset and flags set
    directory: RunDirectory
    saved: dict | None = None        # the saved run's record on --resume
    world_size: int = 1
    model: Any = None
    model_config: dict = field(default_factory=dict)
    tokenizer: Any = None
    batches: Callable | None = None  # get_batch(split, rng) for the Trainer
    loss_fn: Callable | None = None
    optimizer: Any = None            # None: AdamW over decay groups
    lr_schedule: Callable | None = None
    record_extra: dict = field(default_factory=dict)  # task state saved in the checkpoint record (labels, ...)
    scratch: dict = field(default_factory=dict)       # task objects for `finish` (evaluation batches, ...)
    description: str = ""

    @property
    def resume(self) -> bool:
        return bool(self.args.resume)

    @property
    def device(self) -> str:
        return self.settings["device"]

    @property
    def seed(self) -> int:
        return self.settings["seed"]


class Task(abc.ABC):
    """What a trainer declares; `main` runs it. Subclasses set the attributes and write `prepare`,
    `tokenizer_from_dict` and (optionally) `finish`."""

    command: str = ""                        # "gpt_char": run as `python -m train.gpt_char`
    doc: str = ""                            # the module docstring, shown by --help
    models: dict[str, tuple[str, str, str]] = {}   # name → (module, config class, model class), imported lazily
    default_model: str = ""
    settings_class: type | None = None       # the task's own settings (data, evaluation), fields from `setting`
    presets: dict[str, dict[str, dict]] = {}  # preset → {"*": settings for every model, model name: its own}
    default_preset: str = "tiny"
    derived_fields: frozenset[str] = frozenset()  # model-config fields the task sets itself (vocab_size, ...)
    unused_train_fields: frozenset[str] = frozenset()  # TrainConfig fields this task has no use for
    init_from_flag: str | None = None         # e.g. "--init-from": start from a Hugging Face directory

    # ---- what each task writes ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def prepare(self, run: Run) -> None:
        """Fill run.tokenizer (already the saved run's on --resume), run.model, run.model_config, run.batches,
        run.loss_fn (and optionally optimizer, lr_schedule, record_extra, scratch, description), raising a
        USER_ERRORS exception for anything the user can fix."""

    def finish(self, run: Run, trainer: Trainer) -> int:
        """After training (rank 0): exports, scores, samples; returns the exit status."""
        return 130 if trainer.interrupted else 0

    def model_name_of_directory(self, directory: Path, flag: str | None = None) -> str:
        """The model name for a Hugging Face directory given as `flag` (default: the task's --init-from flag), from
        its config.json's model_type."""
        flag = flag or self.init_from_flag
        config_file = directory / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{flag} {directory}: no config.json (expected a Hugging Face checkpoint "
                                    "directory)")
        config = tio.read_json(config_file, tio.ConfigError)
        model_type = config.get("model_type") if isinstance(config, dict) else None
        if model_type not in self.models:
            raise CommandError(f"{flag} {directory}: config.json has model_type {model_type!r}; "
                               f"train.{self.command} knows {', '.join(self.models)}")
        return model_type

    @abc.abstractmethod
    def tokenizer_from_dict(self, data: dict):
        """The tokenizer of a run record (its `to_dict()`, as `record` saved it)."""

    def build_model(self, model_name: str, model_config: dict):
        """A fresh model from a config dict (as every checkpoint stores it)."""
        config_class, model_class = self.model_classes(model_name)
        try:
            return model_class(config_class(**model_config))
        except (TypeError, ValueError) as error:
            raise CommandError(f"model config: {error}") from error

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - an optional hook
        """Flags of this task that are not settings (actions such as finetune's --write-example)."""

    def before_run(self, args: argparse.Namespace) -> int | None:
        """An exit status to stop with before any run (after an action flag), or None to go on."""
        return None

    # ---- the shared machinery -------------------------------------------------------------------------------------
    def model_classes(self, name: str) -> tuple[type, type]:
        """(config class, model class) for a model name, importing its module now; the config class is None for a
        model without one (the bigram takes only its vocabulary size)."""
        if name not in self.models:
            raise CommandError(f"--model {name!r}: choose one of {', '.join(self.models)}")
        module_name, config_name, model_name = self.models[name]
        try:
            module = importlib.import_module(module_name)
            return getattr(module, config_name) if config_name else None, getattr(module, model_name)
        except (ImportError, AttributeError) as error:
            raise CommandError(f"--model {name} needs {config_name} and {model_name} from {module_name}, which "
                               f"cannot be imported ({type(error).__name__}: {error})") from error

    def flags(self, model_name: str | None) -> dict[str, Flag]:
        """Every setting flag: the task's, TrainConfig's (minus the unused) and the model config's scalar fields."""
        found = {**settings_flags(self.settings_class, "task"), **settings_flags(TrainConfig, "train")}
        found = {name: flag for name, flag in found.items() if name not in self.unused_train_fields}
        config_class = self.model_classes(model_name)[0] if model_name is not None else None
        if config_class is not None:
            for name, parameter in inspect.signature(config_class).parameters.items():
                kind = scalar_type(parameter.annotation)
                if kind is not None and name not in self.derived_fields and name not in found:
                    found[name] = Flag(name, kind, MODEL_FIELD_DOMAINS.get(name),
                                       f"{config_class.__name__}.{name}", False, "model")
        return found

    def build_parser(self, model_name: str | None, add_help: bool = True) -> argparse.ArgumentParser:
        parser = OneLineErrorParser(prog=f"python -m train.{self.command}", description=self.doc, add_help=add_help,
                                    formatter_class=argparse.RawDescriptionHelpFormatter,
                                    epilog=self._resume_epilog(model_name))
        add = parser.add_argument
        if len(self.models) > 1:
            add("--model", choices=sorted(self.models), help=f"architecture (default {self.default_model})")
        if len(self.presets) > 1:
            add("--preset", choices=sorted(self.presets), help=f"starting settings (default {self.default_preset})")
        add("--out", default=f"runs/{self.command}", help="run directory (default %(default)s)")
        add("--resume", action="store_true", help="continue the run in --out from its checkpoint")
        add("--overwrite", action="store_true", help="replace the run that --out holds (kept until this run's "
                                                     "first checkpoint)")
        if self.init_from_flag:
            add(self.init_from_flag, dest="init_from", metavar="DIR",
                help="a Hugging Face directory to start from (config, weights and tokenizer)")
        add("--no-progress", action="store_true", help="no progress bar (for logs)")
        add("--ddp", action="store_true", help="data-parallel over the processes of `mpiexec -n N`")
        self.add_arguments(parser)
        for flag in self.flags(model_name).values():
            add_flag(parser, flag)
        return parser

    def _resume_epilog(self, model_name: str | None) -> str:
        names = [f"--{f.name.replace('_', '-')}" for f in self.flags(model_name).values() if f.resumable]
        return "On --resume only these may differ from the saved run: " + " ".join(names)

    def parse(self, argv: list[str] | None) -> tuple[argparse.Namespace, str, dict | None]:
        """(args, model name, the saved run's record on --resume): the model from --model, the --init-from directory
        or the saved run, then every flag parsed with that model's config fields."""
        known, _ = self.build_parser(None, add_help=False).parse_known_args(argv)
        given, saved = getattr(known, "model", None), None
        if known.resume:
            saved = self.saved_record(RunDirectory(known.out))
            found, source = saved["model_name"], f"the run in {known.out}"
        elif getattr(known, "init_from", None):
            found, source = self.model_name_of_directory(Path(known.init_from)), known.init_from
        else:
            found, source = given or self.default_model, None
        if given and given != found:
            raise CommandError(f"--model {given} does not match {source}, which holds {found}")
        if found not in self.models:
            raise CommandError(f"{source} holds a {found!r} model, which train.{self.command} does not train")
        return self.build_parser(found).parse_args(argv), found, saved

    def saved_record(self, directory: RunDirectory) -> dict:
        """The run record of --out's checkpoint (what `Run.record` wrote), checked to be this command's."""
        if not (directory.checkpoint / tio.CHECKPOINT_FILE).exists():
            raise RunDirectoryError(f"--resume: no checkpoint in {directory.path} (start a run there without "
                                    "--resume)")
        record = run_record(directory.checkpoint)
        if record["command"] != self.command:
            raise CommandError(f"--resume: the run in {directory.path} was made by train.{record['command']}, not "
                               f"train.{self.command}")
        return record

    def load_tokenizer(self, record: dict, checkpoint_dir: Path):
        """The tokenizer kept in a run record; CheckpointError naming the file when it is not a valid one."""
        try:
            return self.tokenizer_from_dict(record["tokenizer"])
        except (KeyError, TypeError, ValueError) as error:
            raise tio.CheckpointError(checkpoint_dir / tio.CHECKPOINT_FILE, "the run's tokenizer cannot be read "
                                      f"({type(error).__name__}: {error})") from error

    def resolve(self, args: argparse.Namespace, model_name: str, saved: dict | None) -> tuple[dict, dict]:
        """(settings, model flags): preset, then the saved run, then the flags given; checked against domains and,
        on --resume, against the saved run."""
        flags = self.flags(model_name)
        given = {name: value for name, value in vars(args).items() if name in flags and value is not None}
        if saved is None:
            preset_name = getattr(args, "preset", None) or self.default_preset
            preset = self.preset_settings(preset_name, model_name, args)
            base = {**self.defaults(), "preset": preset_name}
            source = f"preset {preset_name}"
        else:
            self._check_resume(args, flags, given, saved)
            preset, base = {}, {**saved["settings"]}
            source = str(Path(args.out) / "checkpoint" / tio.CHECKPOINT_FILE)
        values = {**base, **preset, **given}
        required = {name for name, default in self.defaults().items() if default is not None}
        for name, value in values.items():
            if name in flags:
                where = None if name in given else source
                if value is None and name in required:
                    raise SettingError(f"{name} in {where}: null, but the setting needs a value")
                check_value(name, value, flags[name].domain, where, flags[name].kind)
        model_flags = {k: v for k, v in values.items() if k in flags and flags[k].group == "model"}
        settings = {k: v for k, v in values.items() if k not in model_flags}
        try:
            TrainConfig.from_dict(settings)  # cross-checks (--min-lr <= --lr)
        except TypeError as error:
            raise CommandError(f"{source}: {error}") from error
        return settings, model_flags

    def defaults(self) -> dict:
        """The declared default of every task and train setting."""
        return {f.name: f.default for cls in (self.settings_class, TrainConfig) if cls
                for f in dataclasses.fields(cls) if domain_of(f) is not None}

    def preset_settings(self, preset_name: str, model_name: str, args: argparse.Namespace) -> dict:
        """The preset's settings for every model ("*"), then its model's own."""
        preset = self.presets.get(preset_name, {})
        return {**preset.get("*", {}), **preset.get(model_name, {})}

    def _check_resume(self, args: argparse.Namespace, flags: dict[str, Flag], given: dict, saved: dict) -> None:
        """CommandError naming the first flag that --resume may not change and that differs from the saved run."""
        if getattr(args, "preset", None) and args.preset != saved["settings"].get("preset"):
            raise CommandError(f"--preset {args.preset} differs from the saved run's preset "
                               f"{saved['settings'].get('preset')}; on --resume the saved settings are used")
        for name, value in given.items():
            saved_value = (saved["model"] if flags[name].group == "model" else saved["settings"]).get(name)
            if not flags[name].resumable and value != saved_value:
                raise CommandError(f"--{name.replace('_', '-')} {value!r} differs from the saved run's {saved_value!r} "
                                   f"in {args.out}; --resume keeps the model and the data as they were (see --help "
                                   "for the flags that may change), or start afresh with --overwrite")
        if getattr(args, "init_from", None):
            raise CommandError(f"{self.init_from_flag} starts a new run; it cannot be combined with --resume")

    # ---- main -------------------------------------------------------------------------------------------------------
    def main(self, argv: list[str] | None = None) -> int:
        """Parse, check and prepare everything, then train: 0 done, 1 non-finite loss, 2 user error, 130 Ctrl-C."""
        try:
            run = self.prepare_run(argv)
            if run is None:
                return 0
            return self.execute(run)
        except USER_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    def prepare_run(self, argv: list[str] | None) -> Run | None:
        args, model_name, saved = self.parse(argv)
        if self.before_run(args) is not None:
            return None
        if not args.out.strip():
            raise CommandError("--out is empty: give the run directory (default runs/<command>)")
        directory = RunDirectory(args.out)
        directory.check_usable(args.resume, args.overwrite)
        settings, model_flags = self.resolve(args, model_name, saved)
        tt.backend.require_device(settings["device"])
        world_size = init_distributed(args.ddp, settings["device"])
        run = Run(args, model_name, settings, model_flags, directory, saved, world_size)
        if saved is not None:
            run.tokenizer = self.load_tokenizer(saved, directory.checkpoint)
        tt.manual_seed(run.seed)
        self.prepare(run)
        if saved is not None:
            check_tokenizer_fits(run.tokenizer, run.model_config.get("vocab_size"), directory.checkpoint)
        for split in ("train", "val"):  # a split too short for one batch fails now, not at the first evaluation
            run.batches(split, np.random.default_rng(0))
        tt.manual_seed(run.seed)
        return run

    def record(self, run: Run) -> dict:
        """What the checkpoint keeps of the run besides weights: enough to rebuild model and tokenizer alone."""
        return {"command": self.command, "model_name": run.model_name, "model": run.model_config,
                "settings": {**run.settings, **run.model_flags}, "tokenizer": run.tokenizer.to_dict(),
                "task": run.record_extra}

    def execute(self, run: Run) -> int:
        """Lock --out, commit the start (or load the checkpoint), train, finish; the lock is released at the end."""
        main_process = dist.is_main_process()
        if main_process:
            run.directory.lock()
        try:
            if main_process:  # again, now that no one else can start: a run may have landed meanwhile
                run.directory.check_state(run.resume, run.args.overwrite)
            trainer = Trainer(run.model, TrainConfig.from_dict({**run.settings, "out_dir": str(run.directory.path),
                                                                "progress": not run.args.no_progress}),
                              run.batches, run_config=self.record(run), loss_fn=run.loss_fn or default_loss,
                              optimizer=run.optimizer, lr_schedule=run.lr_schedule)
            trainer.begin(resume=run.resume)
            if main_process:
                if not run.resume:
                    run.directory.clear_exports()
                print(run.description)
            try:
                trainer.fit(resume=run.resume)
            except NonFiniteLossError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            if not main_process:
                return 130 if trainer.interrupted else 0
            return self.finish(run, trainer)
        finally:
            run.directory.unlock()


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse with the house error policy: one line on stderr naming the flag, exit status 2. Flags must be
    spelled out: argparse's abbreviations would take `--lr` for `--lr-factor` where `--lr` is not a flag."""

    def __init__(self, **kwargs):
        super().__init__(allow_abbrev=False, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        """Refuse `--flag=--`: Python 3.11's argparse drops that '--' and reads a bare `--flag` (True for a bool)."""
        for arg in sys.argv[1:] if args is None else args:
            name, equals, value = str(arg).partition("=")
            if equals and name.startswith("--") and value == "--":
                self.error(f"argument {name}: '--' is not a value")
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def settings_flags(settings_class: type | None, group: str) -> dict[str, Flag]:
    """The flags of a dataclass whose fields are declared with `train.settings.setting`."""
    if settings_class is None:
        return {}
    return {f.name: Flag(f.name, scalar_type(f.type), domain_of(f), f.metadata["help"], f.metadata["resumable"],
                         group) for f in dataclasses.fields(settings_class) if domain_of(f) is not None}


def add_flag(parser: argparse.ArgumentParser, flag: Flag) -> None:
    """`--flag-name VALUE` (a bool also as a bare `--flag-name`), None when not given."""
    kwargs = dict(nargs="?", const=True) if flag.kind is bool else {}
    parser.add_argument("--" + flag.name.replace("_", "-"), dest=flag.name, default=None, type=flag_parser(flag),
                        metavar=flag.kind.__name__.upper(), help=flag_help(flag), **kwargs)


def flag_parser(flag: Flag) -> Callable[[str], Any]:
    """argparse `type=` for a flag: parse the text as the flag's type, then check its domain."""
    def parse(text: str):
        try:
            value = parse_flag_value(text, flag.kind)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {flag.kind.__name__}"
                                             f"{'' if flag.kind is not float else ' (a finite number)'}") from error
        if flag.domain is not None and not flag.domain.accepts(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {flag.domain.text}")
        return value
    return parse


def flag_help(flag: Flag) -> str:
    """The help line: what the setting is, its domain, and whether --resume may change it."""
    domain = "" if flag.domain is None or flag.domain is ANY else f" ({flag.domain.text})"
    return f"{flag.help}{domain}{' [may change on --resume]' if flag.resumable else ''}"


def check_model_fits(run: Run, length_flag: str, length: int, positions: int) -> None:
    """Before training: the model has positions for `length` tokens and an embedding row for every tokenizer id."""
    if length > positions:
        raise CommandError(f"{length_flag} {length} is longer than the model's {positions} positions")
    if run.tokenizer.vocab_size > run.model_config["vocab_size"]:
        raise CommandError(f"the tokenizer has {run.tokenizer.vocab_size} tokens but the model's vocabulary only "
                           f"{run.model_config['vocab_size']}")


def check_tokenizer_fits(tokenizer, vocab_size: int | None, source: Path) -> None:
    """A tokenizer with more ids than the model's vocabulary would index past its embedding."""
    size = getattr(tokenizer, "vocab_size", None)
    if vocab_size is not None and size is not None and size > vocab_size:
        raise tio.CheckpointError(source, f"the tokenizer has {size} tokens but the model's vocabulary only "
                                          f"{vocab_size}; the checkpoint is inconsistent")


def write_scores(run: Run, scores: dict) -> Path:
    """<out>/scores.json, where every trainer leaves its final evaluation (written atomically)."""
    path = run.directory.path / "scores.json"
    tio.atomic_write_text(path, json.dumps(scores, indent=2) + "\n")
    return path


def export_hf(run: Run) -> Path:
    """<out>/hf: the model and its tokenizer in the Hugging Face layout, replaced whole."""
    def write(directory: Path) -> None:
        run.model.save_pretrained(directory)
        run.tokenizer.save_pretrained(directory)
    return run.directory.export_directory("hf", write)


RECORD_FIELDS = {"command": str, "model_name": str, "model": dict, "settings": dict, "tokenizer": dict, "task": dict}


def run_record(checkpoint_dir: Path) -> dict:
    """The run record (what `Task.record` wrote) of a checkpoint, its fields checked: CheckpointError naming the
    file for a checkpoint of another kind or a hand-edited record."""
    record = tio.load_checkpoint(checkpoint_dir).config
    path = checkpoint_dir / tio.CHECKPOINT_FILE
    if not isinstance(record, dict) or "command" not in record:
        raise tio.CheckpointError(path, "not the checkpoint of a train.* run (written by an older tinytensor, or by "
                                        "tinytensor.io.save_checkpoint directly)")
    for key, kind in RECORD_FIELDS.items():
        if not isinstance(record.get(key), kind):
            raise tio.CheckpointError(path, f"config.{key} must be a JSON {'object' if kind is dict else 'string'}, "
                                            f"got {record.get(key)!r:.60}")
    return record
