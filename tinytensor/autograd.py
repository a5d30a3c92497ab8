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


class _GradMode:
    """Context manager and decorator that sets whether new ops record a graph."""

    enabled: bool

    def __enter__(self):
        global _grad_enabled
        self._previous, _grad_enabled = _grad_enabled, self.enabled

    def __exit__(self, *exc_info):
        global _grad_enabled
        _grad_enabled = self._previous

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return function(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Inside this block (or decorated function) ops build no graph: for evaluation and parameter updates."""

    enabled = False


class enable_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Turn graph recording back on inside a `no_grad` region."""

    enabled = True


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

    def _run_backward(self, grad, retain_graph: bool):
        if self.released:
            raise RuntimeError(
                f"backward through {type(self).__name__} a second time: its saved arrays were freed by the first "
                "backward; pass retain_graph=True to the first backward() if you need to go through it twice"
            )
        grads = self.backward(grad)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if not retain_graph:
            self.saved = ()
            self.released = True
        return grads


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
        _accumulate_leaf(tensor, grad, handed_out)
        return
    pending = {id(tensor._node): grad}
    for node in _topological_order(tensor._node):
        node_grad = pending.pop(id(node))
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
            else:
                _accumulate_leaf(step, input_grad, handed_out)


def _set_retained_grad(node, grad, handed_out: set) -> None:
    if node.retained_output is not None:
        output = node.retained_output()
        if output is not None:
            _accumulate_leaf(output, grad, handed_out)
            handed_out.add(id(grad))


def retain_output_grad(tensor) -> None:
    """Ask the next backward to store the gradient of a non-leaf tensor in its `.grad`."""
    tensor._node.retained_output = weakref.ref(tensor)
