"""`GraphXp`: what `self.xp` is inside a backward that runs under create_graph=True.

An op's backward is written once, against `self.xp` (NumPy or CuPy) and the operators arrays and Tensors share.
Under create_graph the engine (`Function.graph_backward`) hands it Tensors and this namespace instead, so the
same lines build a recorded graph: the math functions below are the Tensor ops of the same name; anything else
(`zeros`, `ones`, `arange`, `finfo`, …) comes from the array module and makes constants, which every op lifts.
"""
from __future__ import annotations

from tinytensor.ops import elementwise, linalg, reduce, shape, unary
from tinytensor.tensor import Tensor


class GraphXp:
    def __init__(self, array_module) -> None:
        self.array_module = array_module

    def __getattr__(self, name: str):
        """The array module's own name (constants: `zeros`, `arange`, `finfo`, ...). Called on a Tensor it would
        turn the Tensor into a constant and drop the graph silently, so that is an error naming the function."""
        found = getattr(self.array_module, name)
        if not callable(found):
            return found

        def constants_only(*args, **kwargs):
            if any(isinstance(value, Tensor) for value in (*args, *kwargs.values())):
                raise TypeError(f"create_graph: xp.{name} has no differentiable version in GraphXp; write this "
                                "backward with Tensor ops (see tinytensor/ops/graph_xp.py)")
            return found(*args, **kwargs)
        return constants_only

    exp = staticmethod(elementwise.exp)
    log = staticmethod(elementwise.log)
    abs = staticmethod(elementwise.abs)
    sin = staticmethod(unary.sin)
    cos = staticmethod(unary.cos)
    sinh = staticmethod(unary.sinh)
    cosh = staticmethod(unary.cosh)
    where = staticmethod(elementwise.where)
    matmul = staticmethod(linalg.matmul)
    einsum = staticmethod(linalg.einsum)
    tril = staticmethod(shape.tril)
    triu = staticmethod(shape.triu)

    @property
    def linalg(self):
        """`tinytensor.linalg` (inv, solve, det, ...): the backwards of linear-algebra ops call xp.linalg.*."""
        from tinytensor import linalg

        return linalg

    def sign(self, a: Tensor):
        """A constant: the derivative of sign is zero wherever it exists."""
        return self.array_module.sign(a.data)

    @staticmethod
    def broadcast_to(a: Tensor, target: tuple) -> Tensor:
        return shape.expand(a, *target)

    @staticmethod
    def transpose(a: Tensor, axes: tuple) -> Tensor:
        return shape.permute(a, *axes)

    @staticmethod
    def split(a: Tensor, boundaries: list, axis: int = 0) -> list[Tensor]:
        edges = [0, *boundaries, a.shape[axis]]
        return shape.split(a, [end - start for start, end in zip(edges, edges[1:])], axis)

    @staticmethod
    def flip(a: Tensor, axis: int) -> Tensor:
        return shape.getitem(a, (slice(None),) * axis + (slice(None, None, -1),))

    @staticmethod
    def cumsum(a: Tensor, axis: int) -> Tensor:
        return reduce.cumsum(a, axis)

    @staticmethod
    def roll(a: Tensor, shift, axis=None) -> Tensor:
        return shape.roll(a, shift, axis)
