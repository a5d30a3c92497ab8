"""Reverse-mode automatic differentiation: `Function`, grad mode, and the backward graph walk.

An op is a `Function` subclass with `forward` and `backward` side by side, both on raw arrays (NumPy or CuPy):

    class Mul(Function):
        def forward(self, a, b):
            self.save_for_backward(a, b)
            return a * b
        def backward(self, grad):
            a, b = self.saved
            return grad * b, grad * a

`Function.apply` runs `forward` and, when a gradient is needed, links the output tensor to the function, which
becomes a node of the graph. A node remembers where each input's gradient goes next (the input's own node, or
the leaf tensor that accumulates it) but not the input tensors themselves, so intermediate activations are freed
as soon as the user drops them and nothing but `save_for_backward` keeps memory alive (PyTorch's discipline).

`backward` sorts the nodes topologically without recursion (graphs 100,000 deep work), hands each node the sum
of its output's gradients, and reduces broadcast gradients to the input's shape in one place (`sum_to`).
Saved arrays are released after use unless `retain_graph=True`.

Gradients of gradients (`create_graph=True`, `grad(...)`)
---------------------------------------------------------
`backward` works on raw arrays: the fast path, and the only one a first-order training step takes. With
`create_graph=True` (`loss.backward(create_graph=True)` or `tt.autograd.grad(..., create_graph=True)`) the gradients
are Tensors and every node's backward is itself recorded, so the resulting `.grad` (or returned gradient) can be
differentiated again: Hessian-vector products, gradient penalties, Newton steps, `gradgradcheck`. Each node then
runs `graph_backward`, which takes one of two routes, so no op carries a second copy of its backward:

1. Primitive ops (add, mul, matmul, exp, sum, reshape, indexing, …) run their ordinary `backward` on Tensors. Their
   backward is written against `self.xp` and array operators that Tensors share (`*`, `/`, `.reshape`, `.sum`,
   `@`, `[...]`); under create_graph `self.xp` is `ops.graph_xp.GraphXp`, whose `exp`, `where`, `matmul`, … are
   Tensor ops, and each saved array stands for a Tensor of the graph: an array the op saved that *is* one of its
   inputs is that input (with its history), its output is the output, and anything else (a mask, indices) is a
   constant. So `Exp` saving its output and returning `grad * out` differentiates twice with no extra code.
2. Fused ops (layer norm, cross-entropy, attention, GELU, …) keep their analytic raw-array backward for first
   order, and also a `composed` method: the same output built from primitive ops (the plain versions a learner
   reads first, `ops/composed.py`). Under create_graph the engine runs `composed` on the op's inputs and
   differentiates that (`grad(..., create_graph=True)`), so the second derivative of a fused op is exactly the
   derivative of its textbook definition, tested equal to the fused op. This costs a forward pass of the plain
   version, only when create_graph is on: the first-order path is untouched.

`create_graph=True` implies `retain_graph=True` (the second backward walks the first graph again), as in PyTorch.
"""
from __future__ import annotations

import functools
import inspect
import weakref

from tinytensor import backend

_grad_enabled = True
_anomaly_mode = False
_write_epoch = 0  # counts in-place writes; a node remembers the count when it was recorded
_last_write: dict[int, tuple[int, weakref.ref]] = {}  # id(memory owner) -> (epoch of its last write, weak ref)


class _GradMode:
    """Context manager and decorator that sets whether new ops record a graph.

    Used as `with no_grad():`, `@no_grad()` or bare `@no_grad`: given a function, the class returns that function
    wrapped, as PyTorch's does.
    """

    enabled: bool

    def __new__(cls, function=None):
        mode = super().__new__(cls)
        return mode if function is None else mode(function)

    def __enter__(self):
        global _grad_enabled
        self._previous, _grad_enabled = _grad_enabled, self.enabled

    def __exit__(self, *exc_info):
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return function(*args, **kwargs)

        return wrapper

    def _fresh(self) -> _GradMode:
        """A new context of the same kind (contexts save the previous mode, so one per entry)."""
        return self.__class__()


class no_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Inside this block (or decorated function) ops build no graph: for evaluation and parameter updates."""

    enabled = False


class enable_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Turn graph recording back on inside a `no_grad` region."""

    enabled = True


class inference_mode(_GradMode):  # noqa: N801 - PyTorch's name
    """`no_grad` under PyTorch's other name: `inference_mode(False)` records graphs again.

    PyTorch also marks tensors made inside as "inference tensors" that autograd later refuses; tinytensor's
    tensors made here are ordinary tensors that simply have no graph.
    """

    def __new__(cls, mode=True):
        instance = super().__new__(cls)
        if callable(mode):  # bare @inference_mode
            instance.enabled = False
            return instance(mode)
        return instance

    def __init__(self, mode=True):
        self.enabled = not mode

    def _fresh(self) -> _GradMode:
        return inference_mode(not self.enabled)


def is_grad_enabled() -> bool:
    return _grad_enabled


class set_grad_enabled:  # noqa: N801 - PyTorch's name
    """Turn graph recording on or off. As a call (`set_grad_enabled(False)`) it takes effect at once, as PyTorch's
    does; as a context manager (`with set_grad_enabled(phase == "train"):`) the previous mode comes back after the
    block; as a decorator it applies to each call of the function."""

    def __init__(self, mode: bool) -> None:
        global _grad_enabled
        self._previous, self.enabled = _grad_enabled, bool(mode)
        _grad_enabled = self.enabled

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info) -> None:
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, function):
        self.__exit__()  # construction switched the mode for everyone; as a decorator it is only per call

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(self.enabled):
                return function(*args, **kwargs)

        return wrapper


class detect_anomaly:  # noqa: N801 - PyTorch's name
    """Check every forward output and backward gradient for NaN/Inf and name the op that first produced one.

    Slow (one extra pass per op), so it is off unless you ask: `with tt.autograd.detect_anomaly(): ...`.
    """

    def __enter__(self):
        global _anomaly_mode
        self._previous, _anomaly_mode = _anomaly_mode, True

    def __exit__(self, *exc_info):
        global _anomaly_mode
        _anomaly_mode = self._previous


def _check_finite(array, where: str) -> None:
    if array is not None and backend.is_floating(array.dtype):
        xp = backend.array_module(array)
        if not bool(xp.isfinite(array).all()):
            raise FloatingPointError(f"anomaly: {where} produced NaN or Inf")


class Function:
    """One differentiable op. Subclasses write `forward(*arrays, **options)` and `backward(grad)`.

    `backward` returns one gradient per input (a tuple, or a single array for one input), or None for an input
    whose gradient nobody needs: check `self.needs_input_grad[i]` to skip that work. Gradients may have the
    broadcast shape of the output; the engine reduces them to each input's shape. `backward` must not write into
    `grad`: the same array may flow on to several inputs.
    """

    xp = None  # the array module of this call's inputs
    saved: tuple = ()
    needs_input_grad: tuple = ()
    _hooks: tuple | list = ()  # Tensor.register_hook on this node's output
    _ctx_style = False  # True for PyTorch-style subclasses: static forward(ctx, ...) and backward(ctx, ...)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._ctx_style = isinstance(inspect.getattr_static(cls, "forward"), staticmethod)

    def save_for_backward(self, *arrays) -> None:
        self.saved = arrays

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options):
        """Run the op on Tensors and, when any input requires grad, record it in the graph."""
        from tinytensor.tensor import Tensor

        if cls._ctx_style:
            return _apply_with_ctx(cls, inputs, options)
        fn = cls()
        arrays = [t.data for t in inputs]
        fn.xp = backend.array_module(*arrays, op=cls.__name__)
        needs = tuple([t._requires_grad for t in inputs]) if _grad_enabled else ()
        record = True in needs
        fn.needs_input_grad = needs if record else (False,) * len(inputs)
        out = Tensor._wrap(fn.forward(*arrays, **options), requires_grad=record)
        if _anomaly_mode:
            _check_finite(out.data, f"forward of {cls.__name__}")
        if record:
            fn._link(inputs)
            fn.output_id = id(out.data)
            out._node = fn
        else:
            fn.saved = ()
        return out

    def _link(self, inputs) -> None:
        """Remember where each input's gradient goes: its node, or the leaf tensor itself."""
        self.next_steps = tuple(
            (t._node if t._node is not None else t) if t.requires_grad else None for t in inputs
        )
        self.input_shapes = tuple(t.data.shape for t in inputs)
        self.input_ids = tuple(id(t.data) for t in inputs)  # which saved arrays are inputs (create_graph, below)
        self.retained_output = None
        self.released = False
        self.recorded_at = _write_epoch

    def _run_backward(self, grad, retain_graph: bool, create_graph: bool = False):
        if self.released:
            raise RuntimeError(
                f"backward through {type(self).__name__} a second time: its saved arrays were freed by the first "
                "backward; pass retain_graph=True to the first backward() if you need to go through it twice"
            )
        if self.recorded_at != _write_epoch:  # an in-place write happened since: were our saved arrays hit?
            _check_saved_unmodified(self)
        grads = self.graph_backward(grad) if create_graph else self.backward(grad)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if not retain_graph:
            self.saved = ()
            self.released = True
        return grads

    # ---- create_graph=True: the backward recorded as Tensor ops (see the module docstring) ----------------------
    def graph_backward(self, grad):
        """`backward` with `grad` a Tensor, recorded in the graph: through `composed` for a fused op that has one,
        else the op's own `backward` run on Tensors."""
        if hasattr(self, "composed"):
            return self._backward_through_composed(grad)
        from tinytensor.ops.graph_xp import GraphXp

        arrays, xp = self.saved, self.xp
        self.saved, self.xp = tuple(self._saved_as_tensor(a) for a in arrays), GraphXp(xp)
        try:
            return self.backward(grad)
        finally:
            self.saved, self.xp = arrays, xp

    def _saved_as_tensor(self, array):
        """A saved float array as a Tensor of the graph: this node's output, one of its inputs (with its history),
        or a constant. Identity decides: the ids were taken while the saved arrays and the inputs were all alive."""
        from tinytensor.tensor import Tensor

        if not hasattr(array, "shape") or not backend.is_floating(array.dtype):
            return array  # indices and masks stay arrays: they are never differentiated
        if id(array) == self.output_id:
            return _graph_tensor(array, self)
        if id(array) in self.input_ids:
            step = self.next_steps[self.input_ids.index(id(array))]
            return step if isinstance(step, Tensor) else _graph_tensor(array, step)
        return Tensor._wrap(array)

    def _input_tensors(self) -> list:
        """Every input of this node as a Tensor of the graph; a fused op with `composed` saves all its inputs."""
        by_id = {id(a): a for a in self.saved if hasattr(a, "shape")}
        inputs = []
        for array_id, step in zip(self.input_ids, self.next_steps):
            if array_id not in by_id and not (step is not None and not isinstance(step, Function)):
                raise RuntimeError(f"{type(self).__name__} has a `composed` version but did not save input arrays")
            inputs.append(self._saved_as_tensor(by_id[array_id]) if array_id in by_id else step)
        return inputs

    def _backward_through_composed(self, grad):
        """Differentiate the plain version of this fused op (`self.composed`) at the same inputs."""
        inputs = self._input_tensors()
        wanted = [i for i, need in enumerate(self.needs_input_grad) if need and inputs[i].requires_grad]
        for i in wanted:  # one alias per input: a tensor passed twice gets its two gradients separately
            inputs[i] = _Alias.apply(inputs[i])
        with enable_grad():
            out = self.composed(*inputs)
        found = _gradients([out], [inputs[i] for i in wanted], [grad], retain_graph=True, create_graph=True,
                           allow_unused=True)
        grads = [None] * len(inputs)
        for i, g in zip(wanted, found):
            grads[i] = g
        return tuple(grads)


# ---- PyTorch-style custom functions: static forward(ctx, ...) and backward(ctx, ...) on Tensors ------------------
class FunctionCtx:
    """The `ctx` a PyTorch-style Function's forward and backward share: what forward saved and which inputs need
    a gradient."""

    def __init__(self, needs_input_grad: tuple) -> None:
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *tensors) -> None:
        self.saved_tensors = tensors


def _apply_with_ctx(cls, args: tuple, options: dict):
    """Run a PyTorch-style Function: its forward on Tensors without recording, then one node whose backward is the
    user's `backward(ctx, grad)` (recorded too under create_graph). It returns one Tensor, as most do."""
    from tinytensor.tensor import Tensor

    positions = [i for i, value in enumerate(args) if isinstance(value, Tensor)]
    ctx = FunctionCtx(tuple(isinstance(value, Tensor) and value.requires_grad and _grad_enabled for value in args))
    with no_grad():
        out = cls.forward(ctx, *args, **options)
    if not isinstance(out, Tensor):
        raise TypeError(f"{cls.__name__}.forward must return one Tensor, got {type(out).__name__} (tinytensor's "
                        "custom Functions have a single output)")
    return _CustomNode.apply(*(args[i] for i in positions), result=out.data, user=(cls, ctx, positions))


class _CustomNode(Function):
    """The graph node of a PyTorch-style Function: forward hands back the output already computed; backward calls
    the user's backward on Tensors and keeps the gradients of the Tensor arguments."""

    def forward(self, *arrays, result=None, user=None):
        self.user = user
        return result

    def backward(self, grad):
        with no_grad():
            return tuple(g.data if g is not None else None for g in self._user_grads(grad))

    def graph_backward(self, grad):
        with enable_grad():
            return tuple(self._user_grads(grad))

    def _user_grads(self, grad) -> list:
        from tinytensor.tensor import Tensor

        cls, ctx, positions = self.user
        grads = cls.backward(ctx, grad if isinstance(grad, Tensor) else Tensor._wrap(grad))
        grads = grads if isinstance(grads, tuple) else (grads,)
        return [grads[i] if i < len(grads) else None for i in positions]


def _graph_tensor(array, node):
    """A Tensor holding `array` whose gradient flows into `node` (None: a constant)."""
    from tinytensor.tensor import Tensor

    tensor = Tensor._wrap(array, requires_grad=node is not None)
    tensor._node = node
    return tensor


class _Alias(Function):
    """The identity as a node of its own (see `_backward_through_composed`)."""

    def forward(self, a):
        return a

    def backward(self, grad):
        return grad


# ---- in-place writes (PyTorch's version counter, by memory) ---------------------------------------------------------
def _memory_owner(array):
    """The array that owns `array`'s memory: every view and alias of one buffer shares it (NumPy and CuPy keep
    `.base` pointing at the owner)."""
    base = getattr(array, "base", None)
    return array if base is None else base


def note_in_place_write(array) -> None:
    """Record that `array`'s memory was just overwritten by an in-place op.

    A node whose saved arrays share that memory and were saved before the write refuses to run backward, as
    PyTorch's version counter does, instead of computing a gradient from the new values. Keyed by the memory
    owner, so writes through views, `.detach()` aliases and state-dict entries count too. Costs nothing on the
    graph's hot path: nodes only compare one counter unless a write happened after they were recorded.
    """
    global _write_epoch
    _write_epoch += 1
    owner = _memory_owner(array)
    key = id(owner)
    try:
        ref = weakref.ref(owner, lambda _, key=key: _last_write.pop(key, None))
    except TypeError:  # an owner without weak references (a bytes buffer, some CuPy builds): not tracked
        return
    _last_write[key] = (_write_epoch, ref)


def _check_saved_unmodified(fn: Function) -> None:
    for array in fn.saved:
        if array is None or not hasattr(array, "shape"):
            continue
        owner = _memory_owner(array)
        entry = _last_write.get(id(owner))
        if entry is not None and entry[1]() is owner and entry[0] > fn.recorded_at:
            raise RuntimeError(
                f"one of the arrays {type(fn).__name__} saved for backward was modified by an in-place operation "
                "after the forward pass; use the out-of-place op (x = x + y instead of x += y, x.add(y) instead of "
                "x.add_(y)) or .clone() the tensor first"
            )


# ---- gradient hooks ----------------------------------------------------------------------------------------------
class RemovableHandle:
    """What `Tensor.register_hook` and the Module hooks return: `.remove()` unregisters the hook. With
    `appended=True` the hook is added to `hooks` here (for callers that only hold the list)."""

    def __init__(self, hooks: list, hook, appended: bool = False) -> None:
        self._hooks, self._hook = hooks, hook
        if appended:
            hooks.append(hook)

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def add_hook(tensor, hook) -> RemovableHandle:
    """Call `hook(grad)` whenever the gradient of `tensor` is computed; a non-None result replaces that gradient.

    A non-leaf's hooks sit on the node that made it and see the node's summed gradient; a leaf's hooks see the
    total gradient of one backward pass, before it is added into `.grad`.
    """
    if not tensor.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that does not require grad")
    owner = tensor._node if tensor._node is not None else tensor
    if not getattr(owner, "_hooks", None):
        owner._hooks = []
    owner._hooks.append(hook)
    return RemovableHandle(owner._hooks, hook)


def _run_hooks(hooks, grad):
    from tinytensor.tensor import Tensor

    as_tensor = isinstance(grad, Tensor)  # create_graph=True: gradients are Tensors and stay Tensors
    for hook in hooks:
        replaced = hook(grad if as_tensor else Tensor._wrap(grad))
        if replaced is not None:
            grad = replaced if as_tensor or not isinstance(replaced, Tensor) else replaced.data
    return grad


def sum_to(grad, shape: tuple):
    """Reduce a broadcast gradient back to `shape`: sum the leading axes and the axes that were 1 (tinygrad).
    Works on arrays and, under create_graph, on Tensors (the same methods)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    reduced = grad.sum(axis=axes, keepdims=True) if axes else grad
    return reduced.reshape(shape)


def _topological_order(roots) -> list:
    """Nodes reachable from `roots`, each after every node that feeds gradient into it (iterative DFS).

    A node is marked visited when it is expanded, not when it is pushed: a node pushed early by one consumer and
    reached again through a longer path must be expanded under the later consumer, or it would be ordered before
    that consumer and miss its gradient.
    """
    order, visited = [], set()
    stack = [(root, False) for root in reversed(roots)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for step in node.next_steps:
            if isinstance(step, Function) and id(step) not in visited:
                stack.append((step, False))
    order.reverse()
    return order


def _leading_to(order: list, targets: set) -> set:
    """ids of the nodes in `order` from which some target (a node or leaf id) can be reached: the only nodes
    `grad(outputs, inputs)` needs to run. Producers come after consumers in `order`, so walk it backwards."""
    needed = set()
    for node in reversed(order):
        if any(id(step) in targets or id(step) in needed for step in node.next_steps if step is not None):
            needed.add(id(node))
    return needed


def _adopt(grad, handed_out: set):
    """`grad` as a Tensor that owns its memory and that no other leaf holds, so an in-place update of one `.grad`
    never reaches another: taken without a copy when it qualifies (the common case), else copied (under
    create_graph a differentiable copy)."""
    from tinytensor.tensor import Tensor

    if isinstance(grad, Tensor):
        if id(grad) in handed_out or not _owns_memory(grad.data):
            grad = grad.clone()
        handed_out.add(id(grad))
        return grad
    if id(grad) in handed_out or not _owns_memory(grad):
        grad = grad.copy()
    handed_out.add(id(grad))
    return Tensor._wrap(grad)


def _owns_memory(array) -> bool:
    return getattr(array, "base", None) is None and getattr(array.flags, "writeable", True)


def _accumulate_leaf(leaf, grad, handed_out: set) -> None:
    """Add `grad` into `leaf.grad` (a differentiable sum under create_graph)."""
    if leaf.grad is None:
        leaf.grad = _adopt(grad, handed_out)
    elif leaf.grad.requires_grad or not hasattr(grad, "flags"):
        leaf.grad = leaf.grad + grad
    else:
        leaf.grad.data = leaf.grad.data + grad


class SliceGrad:
    """A gradient that is zero except at a basic index (ints, slices, None, Ellipsis), where it is `values`: what
    reading part of a tensor sends back (`ops.shape.GetItem`). `_propagate` adds it into one buffer where it lands
    instead of building a zero array the size of the whole tensor for every slice, so the T steps of a recurrent
    layer reading x[t] (or the pieces of a split) cost their own size in backward, not T times the tensor's."""

    __slots__ = ("values", "index", "shape")

    def __init__(self, values, index, shape: tuple) -> None:
        self.values, self.index, self.shape = values, index, shape

    def dense(self):
        out = backend.array_module(self.values).zeros(self.shape, dtype=self.values.dtype)
        out[self.index] = self.values
        return out


def _add_grads(existing, new, owned: set):
    """existing + new for two gradients bound for the same place (`existing` None: just `new`). Dense arrays add
    into a new array, as always; a SliceGrad is added in place into an array this walk made itself (its id is in
    `owned`), copying first an array that came from elsewhere."""
    if existing is None:
        return new
    if isinstance(existing, SliceGrad):
        existing, new = new, existing
    if isinstance(existing, SliceGrad):
        existing = existing.dense()
    elif not isinstance(new, SliceGrad):
        total = existing + new
        owned.add(id(total))
        return total
    elif id(existing) not in owned:
        existing = existing.copy()
    owned.add(id(existing))
    existing[new.index] += new.values
    return existing


def _dense(grad):
    return grad.dense() if isinstance(grad, SliceGrad) else grad


def _propagate(roots: list, retain_graph: bool, create_graph: bool, targets: list | None = None) -> dict | None:
    """The graph walk. `roots` pairs tensors with their gradients (arrays, or Tensors under create_graph).

    Without `targets` every leaf that requires grad accumulates its gradient into `.grad` (`backward`). With
    `targets` (tensors, `grad(...)`) nothing is accumulated: only the nodes leading to a target run, and the
    total gradient reaching each target is returned, keyed by id of its node (non-leaf) or of itself (leaf).
    """
    handed_out = {id(grad) for _, grad in roots}  # the caller's gradient arrays are never adopted as a .grad
    pending: dict[int, object] = {}
    owned: set[int] = set()  # ids of gradient arrays this walk made and still holds: SliceGrads add into them
    leaf_totals: dict[int, list] = {}  # leaves with hooks or targets, or reached by slices: summed, given at the end
    captured = None if targets is None else {id(t._node if t._node is not None else t): None for t in targets}

    def send(step, grad) -> None:
        if isinstance(step, Function):
            pending[id(step)] = _add_grads(pending.get(id(step)), grad, owned)
        else:
            send_to_leaf(step, grad)

    def send_to_leaf(leaf, grad) -> None:
        if captured is not None and id(leaf) not in captured:
            return
        if captured is not None or getattr(leaf, "_hooks", None) or isinstance(grad, SliceGrad):
            total = leaf_totals.setdefault(id(leaf), [leaf, None])
            total[1] = _add_grads(total[1], grad, owned)
        else:
            _accumulate_leaf(leaf, grad, handed_out)

    nodes = []
    for tensor, grad in roots:
        send(tensor._node if tensor._node is not None else tensor, grad)
        if tensor._node is not None:
            nodes.append(tensor._node)
    order = _topological_order(nodes)
    needed = None if captured is None else _leading_to(order, set(captured))
    for node in order:
        if id(node) not in pending:  # only roots of other branches of a multi-output grad(...)
            continue
        node_grad = _dense(pending.pop(id(node)))
        owned.discard(id(node_grad))  # from here on others may hold it: never written into again
        node_grad = _run_hooks(node._hooks, node_grad)
        if captured is None:
            _set_retained_grad(node, node_grad, handed_out)
        else:
            if id(node) in captured:
                captured[id(node)] = node_grad
            if id(node) not in needed:
                continue
        input_grads = node._run_backward(node_grad, retain_graph, create_graph)
        for step, shape, input_grad in zip(node.next_steps, node.input_shapes, input_grads):
            if step is None or input_grad is None:
                continue
            if create_graph and not hasattr(input_grad, "_node"):  # a constant array from a Tensor backward
                input_grad = _graph_tensor(input_grad, None)
            if _anomaly_mode:
                _check_finite(input_grad.data if create_graph else _dense(input_grad),
                              f"backward of {type(node).__name__}")
            if not isinstance(input_grad, SliceGrad):
                input_grad = sum_to(input_grad, shape)
            if isinstance(step, Function):  # `send`, inlined: this loop is the hot path of every backward
                key = id(step)
                pending[key] = _add_grads(pending[key], input_grad, owned) if key in pending else input_grad
            else:
                send_to_leaf(step, input_grad)
    for leaf, total in leaf_totals.values():
        total = _run_hooks(getattr(leaf, "_hooks", ()) or (), _dense(total))
        if captured is None:
            _accumulate_leaf(leaf, total, handed_out)
        else:
            captured[id(leaf)] = total
    return captured


def run_backward(tensor, grad, retain_graph: bool = False, create_graph: bool = False) -> None:
    """Propagate `grad` (an array shaped like `tensor`, or a Tensor under create_graph) to every leaf that
    requires grad."""
    if create_graph:
        with enable_grad():
            _propagate([(tensor, grad)], True if retain_graph is None else retain_graph, True)
    else:
        _propagate([(tensor, grad)], bool(retain_graph), False)


def _gradients(outputs: list, inputs: list, grad_outputs: list, retain_graph: bool, create_graph: bool,
               allow_unused: bool) -> tuple:
    with enable_grad() if create_graph else no_grad():
        captured = _propagate(list(zip(outputs, grad_outputs)), retain_graph, create_graph, targets=inputs)
    handed_out: set = set()
    results = []
    for position, tensor in enumerate(inputs):
        found = captured[id(tensor._node if tensor._node is not None else tensor)]
        if found is None and not allow_unused:
            raise RuntimeError(f"grad: input {position} (shape {tensor.shape}) was not used to compute the outputs; "
                               "pass allow_unused=True to get None for it")
        results.append(None if found is None else _adopt(found, handed_out))
    return tuple(results)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple:
    """The gradients of `outputs` with respect to `inputs`, as a tuple of Tensors (PyTorch's torch.autograd.grad).

    Nothing is accumulated into any `.grad`. `outputs` and `inputs` are Tensors or sequences of them; inputs may be
    leaves or intermediate tensors, and must require grad. `grad_outputs` (one per output, shaped like it) weights
    the outputs; it may be omitted for outputs of one element. With `create_graph=True` the returned gradients are
    recorded in the graph and can be differentiated again; `retain_graph` defaults to `create_graph`. An input the
    outputs do not depend on is an error, or None with `allow_unused=True`.
    """
    from tinytensor.tensor import Tensor, _to_array

    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    given = [None] * len(outputs) if grad_outputs is None else \
        [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
    if len(given) != len(outputs):
        raise ValueError(f"grad: {len(given)} grad_outputs for {len(outputs)} outputs")
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, Tensor) or not tensor.requires_grad:
            raise RuntimeError(f"grad: input {position} does not require grad, so it has no gradient; create it "
                               "with requires_grad=True")
    roots = []
    for position, (out, weight) in enumerate(zip(outputs, given)):
        if not out.requires_grad:
            raise RuntimeError(f"grad: output {position} does not require grad (was it made under no_grad?)")
        if weight is None:
            if out.data.size != 1:
                raise RuntimeError(f"grad: output {position} has shape {out.shape}; pass grad_outputs for outputs "
                                   "of more than one element")
            weight = out.xp.ones_like(out.data)
        elif isinstance(weight, Tensor):
            weight = weight if create_graph else weight.data
        else:
            weight = _to_array(weight, out.dtype, out.device)
        if weight.shape != out.shape:
            raise ValueError(f"grad: grad_outputs[{position}] has shape {weight.shape}, output {out.shape}")
        roots.append(_graph_tensor(weight, None) if create_graph and not isinstance(weight, Tensor) else weight)
    retain_graph = create_graph if retain_graph is None else retain_graph
    return _gradients(outputs, inputs, roots, retain_graph, create_graph, allow_unused)


def _set_retained_grad(node, grad, handed_out: set) -> None:
    if node.retained_output is not None:
        output = node.retained_output()
        if output is not None:
            _accumulate_leaf(output, grad, handed_out)
            handed_out.add(id(grad))


def retain_output_grad(tensor) -> None:
    """Ask the next backward to store the gradient of a non-leaf tensor in its `.grad`."""
    tensor._node.retained_output = weakref.ref(tensor)
