"""`Module` and `Parameter`: how a network owns its weights, with PyTorch's names and semantics.

This sits on top of the engine (backend, Tensor, ops) and under every layer in `tinytensor.nn` and every model in
`models/`. A `Module` registers what is assigned to it, in assignment order: `Parameter`s (trained weights),
sub-`Module`s, and buffers (`register_buffer`: tensors that move and cast with the module but are not trained,
such as rotary tables). From that one registry come everything else: `named_parameters` (the order optimizers and
checkpoints see, identical across runs), `state_dict`/`load_state_dict`, `to(device or dtype)`, `train`/`eval`,
and the nested `repr`.

Parameters keep their identity forever: `to` and `load_state_dict` replace or overwrite `.data` inside the same
`Parameter` objects, so an optimizer built earlier still points at the live weights.

Containers: `ModuleList`, `ModuleDict`, `Sequential` and `ParameterList` register their items under "0", "1", …
or their keys.
"""
from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, NamedTuple

from tinytensor import backend
from tinytensor.autograd import RemovableHandle
from tinytensor.tensor import Tensor


class Parameter(Tensor):
    """A floating-point Tensor that a Module trains: `requires_grad` is on by default and it is registered when
    assigned to a Module attribute. Built from a Tensor, it shares that tensor's array (no copy)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)
        if not backend.is_floating(self.dtype):
            raise TypeError(f"Parameter needs a floating-point dtype, got {self.dtype}")

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(..., strict=False)` could not match: keys the module expected and keys it did not."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and model. Subclasses assign parts in `__init__` and compute in `forward`."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        """forward, between the hooks registered with `register_forward_pre_hook` and `register_forward_hook`."""
        pre_hooks, hooks = self.__dict__.get("_forward_pre_hooks"), self.__dict__.get("_forward_hooks")
        for hook in list(pre_hooks or ()):
            changed = hook(self, args)
            if changed is not None:
                args = changed if isinstance(changed, tuple) else (changed,)
        output = self.forward(*args, **kwargs)
        for hook in list(hooks or ()):
            changed = hook(self, args, output)
            if changed is not None:
                output = changed
        return output

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """Call `hook(module, args)` before each forward; a non-None result replaces the positional arguments."""
        return RemovableHandle(self.__dict__.setdefault("_forward_pre_hooks", []), hook, appended=True)

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """Call `hook(module, args, output)` after each forward (to record activations, as the tutorials do); a
        non-None result replaces the output."""
        return RemovableHandle(self.__dict__.setdefault("_forward_hooks", []), hook, appended=True)

    # ---- registration ----------------------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        """Parameters and Modules are registered under `name`; a Tensor assigned to a buffer's name replaces it."""
        if "_parameters" not in self.__dict__ and isinstance(value, (Parameter, Module)):
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() has run; call super().__init__()")
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif name in self.__dict__.get("_parameters", ()):
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r}: use a Parameter or None")
            self._parameters[name] = None
        elif name in self.__dict__.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r}: use a Tensor or None")
            self._buffers[name] = value
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to submodule {name!r}: use a Module or None")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        """Called only when normal lookup fails: look in the three registries."""
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def _claim(self, name: str, registry: dict) -> None:
        """Free `name` for a registration in `registry`: drop it from the other registries and the plain
        attributes. Re-registering in the same registry keeps the name's place in the order."""
        if "." in name or not name:
            raise KeyError(f"invalid attribute name {name!r}: it must be non-empty and contain no '.'")
        for other in (self._parameters, self._buffers, self._modules):
            if other is not registry:
                other.pop(name, None)
        self._non_persistent_buffers.discard(name)
        self.__dict__.pop(name, None)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register a Parameter (or None, for an optional weight such as a disabled bias) under `name`."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter or None, got {type(param).__name__}")
        self._claim(name, self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register a Tensor that is part of the module's state but not trained. Non-persistent buffers move and
        cast with the module but stay out of `state_dict` (e.g. tables recomputed from the config)."""
        if tensor is not None and (not isinstance(tensor, Tensor) or isinstance(tensor, Parameter)):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor (not a Parameter) or None, "
                            f"got {type(tensor).__name__}")
        self._claim(name, self._buffers)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def register_module(self, name: str, module: Module | None) -> None:
        """`add_module` under PyTorch's newer name."""
        self.add_module(name, module)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a sub-Module under `name` (what attribute assignment does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): expected a Module or None, got {type(module).__name__}")
        self._claim(name, self._modules)
        self._modules[name] = module

    # ---- traversal -------------------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant, depth first in registration order, each once (shared ones too)."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def get_submodule(self, target: str) -> Module:
        """The sub-module at a dotted path ("transformer.h.0.attn"; "" is this module); AttributeError names the
        first missing part."""
        module = self
        for part in target.split(".") if target else ():
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (looking up {target!r})")
            module = child
        return module

    def get_parameter(self, target: str) -> Parameter:
        return self._get_member(target, "_parameters", "parameter")

    def get_buffer(self, target: str) -> Tensor:
        return self._get_member(target, "_buffers", "buffer")

    def _get_member(self, target: str, registry: str, kind: str):
        path, _, name = target.rpartition(".")
        owner = self.get_submodule(path)
        if name not in getattr(owner, registry):
            raise AttributeError(f"{type(owner).__name__} has no {kind} {name!r} (looking up {target!r})")
        return getattr(owner, registry)[name]

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct sub-modules, in registration order."""
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool) -> Iterator[tuple[str, Tensor]]:
        """(qualified name, tensor) from one registry of every module, each tensor once (first name wins)."""
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        seen: set[int] = set()
        for module_name, module in modules:
            for name, member in getattr(module, registry).items():
                if member is None or id(member) in seen:
                    continue
                seen.add(id(member))
                yield (f"{module_name}.{name}" if module_name else name), member

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(name, Parameter) in registration order; a parameter shared by two modules is listed once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def num_parameters(self, trainable_only: bool = False) -> int:
        """How many scalars the parameters hold; a shared (tied) parameter counts once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- modes and gradients ---------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (dropout active) on this module and every descendant."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: `train(False)`."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter."""
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient, or fill it with zeros (a new array, so no alias is mutated)."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.data = param.grad.xp.zeros_like(param.grad.data)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call `fn` on every descendant, children first, then on self (e.g. custom initialisation)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- device and dtype ------------------------------------------------------------------------------------
    def to(self, device_or_dtype) -> Module:
        """Move to a device ('cpu', 'cuda') or cast floating parameters and buffers to a dtype, in place.

        Parameters stay the same objects (their `.data` and `.grad` are replaced), so optimizers keep working.
        Integer buffers are never cast. Returns self, for chaining.
        """
        device, dtype = _device_or_dtype(device_or_dtype)
        for tensor in [*self._parameters.values(), *self._buffers.values()]:
            if tensor is not None:
                _convert(tensor, device, dtype)
                if tensor.grad is not None:
                    _convert(tensor.grad, device, dtype)
        for child in self.children():
            child.to(device_or_dtype)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    def float(self) -> Module:
        return self.to(backend.float32)

    def double(self) -> Module:
        return self.to(backend.float64)

    # ---- state -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """Name → detached Tensor sharing the live array, for every parameter and persistent buffer.

        Tied parameters appear under each of their names (as in PyTorch); writers decide which aliases to drop.
        """
        return {name: tensor.detach() for name, tensor in self._state_targets().items()}

    def _persistent_state(self) -> Iterator[tuple[str, Tensor]]:
        for name, param in self._parameters.items():
            if param is not None:
                yield name, param
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers:
                yield name, buffer

    def _state_targets(self) -> dict[str, Tensor]:
        """Every tensor `load_state_dict` writes into, under every name it can be reached by."""
        targets: dict[str, Tensor] = {}
        for module_name, module in self._all_named_modules():
            for name, tensor in module._persistent_state():
                targets[f"{module_name}.{name}" if module_name else name] = tensor
        return targets

    def _all_named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Like named_modules, but a shared module is visited under each of its names (no deduplication)."""
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child._all_named_modules(f"{prefix}.{name}" if prefix else name)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values (Tensors or arrays) into the parameters and persistent buffers, casting to each one's dtype
        and device. Nothing is written unless every shape matches.

        Raises RuntimeError listing, in one message, every shape mismatch (always) and every missing and
        unexpected key (when `strict`). Returns (missing_keys, unexpected_keys).
        """
        targets = self._state_targets()
        missing = [name for name in targets if name not in state_dict]
        unexpected = [name for name in state_dict if name not in targets]
        mismatched = [(name, targets[name].shape, tuple(_array_of(value).shape))
                      for name, value in state_dict.items()
                      if name in targets and tuple(_array_of(value).shape) != targets[name].shape]
        problems = [f"missing keys: {', '.join(missing)}"] if strict and missing else []
        problems += [f"unexpected keys: {', '.join(unexpected)}"] if strict and unexpected else []
        problems += [f"size mismatch for {name}: expected shape {expected}, got shape {got}"
                     for name, expected, got in mismatched]
        if problems:
            raise RuntimeError(f"error(s) loading state_dict into {type(self).__name__}:\n  " + "\n  ".join(problems))
        for name, value in state_dict.items():
            if name in targets:
                _copy_into(targets[name], _array_of(value))
        return IncompatibleKeys(missing, unexpected)

    # ---- printing --------------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The configuration shown inside this module's parentheses (layers override it)."""
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + _indent(repr(module)) for name, module in self._modules.items()]
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = ([extra] if extra else []) + lines
        return f"{type(self).__name__}(\n  " + "\n  ".join(body) + "\n)"


def _indent(text: str) -> str:
    return text.replace("\n", "\n  ")


def _device_or_dtype(target) -> tuple[str | None, Any]:
    """Split a `to()` argument into (device, None) or (None, floating dtype)."""
    if isinstance(target, str) and target.split(":")[0] in ("cpu", "cuda"):
        return backend.normalize_device(target), None
    dtype = backend.as_dtype(target)
    if not backend.is_floating(dtype):
        raise TypeError(f"Module.to only casts to floating dtypes, got {dtype}")
    return None, dtype


def _convert(tensor: Tensor, device: str | None, dtype) -> None:
    """Move or cast one tensor's array in place of the old one; integer tensors keep their dtype."""
    if device is not None:
        tensor.data = backend.to_device(tensor.data, device)
    elif backend.is_floating(tensor.dtype) and tensor.dtype != dtype:
        tensor.data = tensor.data.astype(dtype)


def _array_of(value):
    """The raw array behind a state-dict value (a Tensor, or a NumPy/CuPy array)."""
    return value.data if isinstance(value, Tensor) else value


def _copy_into(target: Tensor, source) -> None:
    """Overwrite `target`'s values with `source`, cast to target's dtype and moved to its device."""
    moved = backend.to_device(source, target.device)
    target.data[...] = moved.astype(target.dtype, copy=False)


class ModuleList(Module):
    """A list of Modules registered as "0", "1", …: `append`, `extend`, indexing, `len`, iteration."""

    def __init__(self, modules: Iterable[Module] = ()):
        super().__init__()
        self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index: int | slice) -> Module | ModuleList:
        items = list(self._modules.values())
        return ModuleList(items[index]) if isinstance(index, slice) else items[index]

    def __setitem__(self, index: int, module: Module) -> None:
        self.add_module(str(range(len(self))[index]), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ParameterList(Module):
    """A list of Parameters registered as "0", "1", …, so `parameters()`, optimizers and state dicts see them.
    Tensors appended are wrapped in Parameters (sharing their arrays), as PyTorch does."""

    def __init__(self, values: Iterable[Tensor] = ()):
        super().__init__()
        self.extend(values)

    def append(self, value: Tensor) -> ParameterList:
        self.register_parameter(str(len(self)), value if isinstance(value, Parameter) else Parameter(value))
        return self

    def extend(self, values: Iterable[Tensor]) -> ParameterList:
        for value in values:
            self.append(value)
        return self

    def __getitem__(self, index: int | slice) -> Parameter | ParameterList:
        items = list(self._parameters.values())
        return ParameterList(items[index]) if isinstance(index, slice) else items[index]

    def __setitem__(self, index: int, value: Tensor) -> None:
        name = str(range(len(self))[index])
        self.register_parameter(name, value if isinstance(value, Parameter) else Parameter(value))

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._parameters.values())


class ModuleDict(Module):
    """A dict of Modules registered under their keys, in insertion order."""

    def __init__(self, modules: Mapping[str, Module] | None = None):
        super().__init__()
        for name, module in (modules or {}).items():
            self[name] = module

    def __getitem__(self, name: str) -> Module:
        return self._modules[name]

    def __setitem__(self, name: str, module: Module) -> None:
        self.add_module(name, module)

    def __delitem__(self, name: str) -> None:
        del self._modules[name]

    def __contains__(self, name: str) -> bool:
        return name in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self) -> KeysView[str]:
        return self._modules.keys()

    def values(self) -> ValuesView[Module]:
        return self._modules.values()

    def items(self) -> ItemsView[str, Module]:
        return self._modules.items()


class Sequential(ModuleList):
    """Modules applied one after another: `Sequential(a, b)(x) == b(a(x))`. Items are named "0", "1", …"""

    def __init__(self, *modules: Module):
        super().__init__(modules)

    def __getitem__(self, index: int | slice) -> Module | Sequential:
        items = list(self._modules.values())
        return Sequential(*items[index]) if isinstance(index, slice) else items[index]

    def forward(self, x):
        for module in self:
            x = module(x)
        return x
