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
"""
from __future__ import annotations

import functools
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
        self.retained_output = None
        self.released = False
        self.recorded_at = _write_epoch

    def _run_backward(self, grad, retain_graph: bool):
        if self.released:
            raise RuntimeError(
                f"backward through {type(self).__name__} a second time: its saved arrays were freed by the first "
                "backward; pass retain_graph=True to the first backward() if you need to go through it twice"
            )
        if self.recorded_at != _write_epoch:  # an in-place write happened since: were our saved arrays hit?
            _check_saved_unmodified(self)
        grads = self.backward(grad)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if not retain_graph:
            self.saved = ()
            self.released = True
        return grads


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
    """What `Tensor.register_hook` returns: `.remove()` unregisters the hook."""

    def __init__(self, hooks: list, hook) -> None:
        self._hooks, self._hook = hooks, hook

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

    for hook in hooks:
        replaced = hook(Tensor._wrap(grad))
        if replaced is not None:
            grad = replaced.data if isinstance(replaced, Tensor) else replaced
    return grad


def sum_to(grad, shape: tuple):
    """Reduce a broadcast gradient back to `shape`: sum the leading axes and the axes that were 1 (tinygrad)."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and grad.shape[i + lead] != 1)
    reduced = grad.sum(axis=axes, keepdims=True) if axes else grad
    return reduced.reshape(shape)


def _topological_order(root) -> list:
    """Nodes reachable from `root`, each after every node that feeds gradient into it (iterative DFS).

    A node is marked visited when it is expanded, not when it is pushed: a node pushed early by one consumer and
    reached again through a longer path must be expanded under the later consumer, or it would be ordered before
    that consumer and miss its gradient.
    """
    order, visited = [], set()
    stack = [(root, False)]
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


def _accumulate_leaf(leaf, grad, handed_out: set) -> None:
    """Add `grad` into `leaf.grad`. The first gradient is stored without a copy only when nothing else can see it:
    an array that owns its memory and has not been handed to another tensor in this backward pass."""
    from tinytensor.tensor import Tensor

    if leaf.grad is not None:
        leaf.grad.data = leaf.grad.data + grad
        return
    private = getattr(grad, "base", None) is None and getattr(grad.flags, "writeable", True)
    if not private or id(grad) in handed_out:
        grad = grad.copy()
    handed_out.add(id(grad))
    leaf.grad = Tensor._wrap(grad)


def run_backward(tensor, grad, retain_graph: bool = False) -> None:
    """Propagate `grad` (an array shaped like `tensor`) to every leaf that requires grad."""
    handed_out = {id(grad)}  # the caller's gradient array is never adopted as a .grad
    if tensor._node is None:
        _accumulate_leaf(tensor, _run_hooks(getattr(tensor, "_hooks", ()), grad), handed_out)
        return
    pending = {id(tensor._node): grad}
    hooked_leaves: dict[int, list] = {}  # leaves with hooks get their total gradient at the end
    for node in _topological_order(tensor._node):
        node_grad = _run_hooks(node._hooks, pending.pop(id(node)))
        _set_retained_grad(node, node_grad, handed_out)
        input_grads = node._run_backward(node_grad, retain_graph)
        for step, shape, input_grad in zip(node.next_steps, node.input_shapes, input_grads):
            if step is None or input_grad is None:
                continue
            if _anomaly_mode:
                _check_finite(input_grad, f"backward of {type(node).__name__}")
            input_grad = sum_to(input_grad, shape)
            if isinstance(step, Function):
                key = id(step)
                pending[key] = pending[key] + input_grad if key in pending else input_grad
            elif getattr(step, "_hooks", None):
                total = hooked_leaves.setdefault(id(step), [step, None])
                total[1] = input_grad if total[1] is None else total[1] + input_grad
            else:
                _accumulate_leaf(step, input_grad, handed_out)
    for leaf, total in hooked_leaves.values():
        _accumulate_leaf(leaf, _run_hooks(leaf._hooks, total), handed_out)


def _set_retained_grad(node, grad, handed_out: set) -> None:
    if node.retained_output is not None:
        output = node.retained_output()
        if output is not None:
            _accumulate_leaf(output, grad, handed_out)
            handed_out.add(id(grad))


def retain_output_grad(tensor) -> None:
    """Ask the next backward to store the gradient of a non-leaf tensor in its `.grad`."""
    tensor._node.retained_output = weakref.ref(tensor)
