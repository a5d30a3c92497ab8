"""Pictures of what tinytensor computes: the autograd graph of a tensor, and attention-weight heatmaps.

    from tinytensor import viz
    print(viz.to_dot(loss, names={w: "w", b: "b"}))   # Graphviz DOT text: needs nothing else
    viz.render_svg(loss, "loss.svg")                  # the `graphviz` package + Graphviz's `dot` (extra `viz`)
    viz.plot_graph(loss)                              # the same graph drawn with matplotlib (extra `plot`)
    viz.plot_attention(weights, tokens=list("hello")) # one [Tq, Tk] map of attention weights

This module sits above the engine and only reads the graph: a tensor's creator node (`tensor._node`), each node's
`next_steps` (the next node, the leaf tensor, or None for an input that needs no gradient) and `input_shapes`.
A node does not keep its output tensor (that would keep activations alive), so a node's output shape is read from
where the output went: the root's own shape, or the `input_shapes` entry of a consumer. Its dtype is worked out
from its inputs (leaves know theirs; an op computes in the promoted dtype of its inputs), and, for a `Cast` whose
target is not recorded, from its consumer. Inputs that need no gradient are not in the graph, so a float32 op fed
a float64 constant would show float32; every leaf's label is exact.

Nothing heavy is imported until a function needs it (DeZero's trap: `import` pulling in matplotlib).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy

from tinytensor.autograd import Function
from tinytensor.ops.elementwise import Cast
from tinytensor.tensor import Tensor


@dataclass
class GraphNode:
    """One box of the drawing: an op (a `Function`) or a leaf tensor, with the shape and dtype it produces."""

    id: str                  # "n0" is the root; the rest are numbered in breadth-first order from it
    kind: str                # "op" or "leaf"
    name: str                # the op's class name, or the leaf's name from `names` ("" if none)
    shape: tuple
    dtype: str
    inputs: list[str] = field(default_factory=list)   # ids of the nodes feeding this one, in argument order

    @property
    def label(self) -> str:
        """Two lines: the name, then shape and dtype, e.g. 'MatMul' / '[4, 2] float32'."""
        details = f"{list(self.shape)} {self.dtype}"
        return f"{self.name}\n{details}" if self.name else details


# ---- the graph as data ------------------------------------------------------------------------------------------
def graph_nodes(tensor: Tensor, names: Mapping[Tensor, str] | None = None) -> list[GraphNode]:
    """The graph that `tensor.backward()` would walk, root first, as a list of `GraphNode`s.

    Breadth-first from the root, without recursion (graphs of any depth); ids and order are deterministic, so the
    same code gives the same list. `names` maps leaf tensors (parameters, inputs) to the names shown on them.
    """
    leaf_names = {id(t): name for t, name in (names or {}).items()}
    root = tensor._node if tensor._node is not None else tensor
    objects, inputs, shapes = {"n0": root}, {}, {"n0": tuple(tensor.shape)}
    ids, queue = {id(root): "n0"}, deque(["n0"])
    while queue:
        node_id = queue.popleft()
        inputs[node_id] = []
        for step, shape in _graph_inputs(objects[node_id]):
            if id(step) not in ids:
                ids[id(step)] = f"n{len(objects)}"
                objects[ids[id(step)]], shapes[ids[id(step)]] = step, tuple(shape)
                queue.append(ids[id(step)])
            inputs[node_id].append(ids[id(step)])
    dtypes = _infer_dtypes(objects, inputs, tensor.dtype)
    return [GraphNode(node_id, "op" if isinstance(obj, Function) else "leaf",
                      type(obj).__name__ if isinstance(obj, Function) else leaf_names.get(id(obj), ""),
                      shapes[node_id], str(dtypes[node_id]), inputs[node_id]) for node_id, obj in objects.items()]


def _graph_inputs(obj) -> list[tuple]:
    """(next node or leaf, its shape) for each input of an op that needs a gradient; nothing for a leaf."""
    if not isinstance(obj, Function):
        return []
    return [(step, shape) for step, shape in zip(obj.next_steps, obj.input_shapes) if step is not None]


def _infer_dtypes(objects: dict, inputs: dict, root_dtype) -> dict:
    """dtype of each node's output: exact for leaves and the root, the promoted dtype of the inputs for an op, and
    the dtype its consumer received for a Cast (whose target is not recorded) or anything fed only by Casts."""
    order = _consumers_first(inputs)
    from_inputs = {}
    for node_id in reversed(order):  # inputs before the ops that use them
        obj = objects[node_id]
        if not isinstance(obj, Function):
            from_inputs[node_id] = numpy.dtype(obj.dtype)
            continue
        known = [from_inputs[i] for i in inputs[node_id] if from_inputs[i] is not None]
        from_inputs[node_id] = numpy.result_type(*known) if known and not isinstance(obj, Cast) else None
    first_consumer = {}
    for node_id in order:
        for source in inputs[node_id]:
            first_consumer.setdefault(source, node_id)
    dtypes = {"n0": numpy.dtype(root_dtype)}
    for node_id in order[1:]:
        consumer = first_consumer[node_id]
        received = objects[consumer].source_dtype if isinstance(objects[consumer], Cast) else dtypes[consumer]
        dtypes[node_id] = from_inputs[node_id] if from_inputs[node_id] is not None else received
    return dtypes


def _consumers_first(inputs: dict[str, list[str]]) -> list[str]:
    """Node ids in topological order from the root "n0", every consumer before its inputs (Kahn's algorithm)."""
    consumers_left = dict.fromkeys(inputs, 0)
    for sources in inputs.values():
        for source in sources:
            consumers_left[source] += 1
    order, ready = [], deque(["n0"])
    while ready:
        node_id = ready.popleft()
        order.append(node_id)
        for source in inputs[node_id]:
            consumers_left[source] -= 1
            if consumers_left[source] == 0:
                ready.append(source)
    return order


# ---- Graphviz --------------------------------------------------------------------------------------------------
_STYLE = {"op": 'shape=box, style="rounded,filled", fillcolor="#dbe8f7"',
          "leaf": 'shape=ellipse, style=filled, fillcolor="#f7e7c6"'}


def to_dot(tensor: Tensor, names: Mapping[Tensor, str] | None = None) -> str:
    """The autograd graph of `tensor` as Graphviz DOT text: ops as boxes, leaf tensors as ellipses, each labelled
    with its name, shape and dtype; an edge runs from every input to the op that consumed it.

    Node lines come in `graph_nodes` order (root `n0` first), then edge lines grouped by consumer, in argument
    order. Paste the text into any Graphviz viewer, or call `render_svg`.
    """
    nodes = graph_nodes(tensor, names)
    lines = ["digraph autograd {", '  node [fontname="Helvetica", fontsize=11];']
    lines += [f'  {node.id} [label="{_dot_escape(node.label)}", {_STYLE[node.kind]}];' for node in nodes]
    lines += [f"  {source} -> {node.id};" for node in nodes for source in node.inputs]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_svg(tensor: Tensor, path=None, names: Mapping[Tensor, str] | None = None) -> str:
    """Render `to_dot(tensor)` to SVG with Graphviz; returns the SVG text and writes it to `path` when given.

    Needs the `graphviz` Python package (`pip install -e ".[viz]"`) and Graphviz's `dot` program on the PATH
    (e.g. `apt install graphviz`, `brew install graphviz`).
    """
    try:
        import graphviz
    except ImportError as error:
        raise ImportError('render_svg needs the graphviz package: pip install -e ".[viz]" (or pip install '
                          'graphviz), plus Graphviz\'s dot program; to_dot() needs neither') from error
    svg = graphviz.Source(to_dot(tensor, names)).pipe(format="svg", encoding="utf-8")
    if path is not None:
        with open(path, "w", encoding="utf-8") as file:
            file.write(svg)
    return svg


# ---- matplotlib --------------------------------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError('plotting needs matplotlib: pip install -e ".[plot]" (or pip install matplotlib)') from error
    return plt


def plot_graph(tensor: Tensor, names: Mapping[Tensor, str] | None = None, ax=None):
    """Draw the autograd graph with matplotlib alone (no Graphviz): inputs on the left, `tensor` on the right.

    Each node sits in the column of its longest path to the root. Meant for the small graphs of a tutorial;
    use `to_dot`/`render_svg` for big ones. Returns the matplotlib Axes.
    """
    nodes = graph_nodes(tensor, names)
    depth = _longest_path_to_root(nodes)
    columns: dict[int, list[GraphNode]] = {}
    for node in nodes:
        columns.setdefault(depth[node.id], []).append(node)
    deepest, tallest = max(columns), max(len(column) for column in columns.values())
    if ax is None:
        _, ax = _pyplot().subplots(figsize=(2.2 * (deepest + 1), 1.1 * tallest + 0.6))
    where = {node.id: (deepest - d, (len(column) - 1) / 2 - row)
             for d, column in columns.items() for row, node in enumerate(column)}
    boxes = {}
    for node in nodes:
        color = "#dbe8f7" if node.kind == "op" else "#f7e7c6"
        boxes[node.id] = ax.text(*where[node.id], node.label, ha="center", va="center", fontsize=9, bbox=dict(
            boxstyle="round" if node.kind == "op" else "ellipse", facecolor=color, edgecolor="#555555"))
    for node in nodes:
        for source in node.inputs:  # from box edge to box edge: each arrow is clipped by the two boxes' outlines
            start, end = boxes[source], boxes[node.id]
            ax.annotate("", xy=(0.5, 0.5), xycoords=end, xytext=(0.5, 0.5), textcoords=start,
                        arrowprops=dict(arrowstyle="->", color="#555555", shrinkA=1, shrinkB=1,
                                        patchA=start.get_bbox_patch(), patchB=end.get_bbox_patch()))
    ax.set_xlim(-0.6, deepest + 0.6)
    ax.set_ylim(-tallest / 2 - 0.1, tallest / 2 + 0.1)
    ax.axis("off")
    return ax


def _longest_path_to_root(nodes: list[GraphNode]) -> dict[str, int]:
    """Column of each node: the most edges between it and the root (relaxed in consumers-first order)."""
    inputs = {node.id: node.inputs for node in nodes}
    depth = dict.fromkeys(inputs, 0)
    for node_id in _consumers_first(inputs):
        for source in inputs[node_id]:
            depth[source] = max(depth[source], depth[node_id] + 1)
    return depth


def _as_matrix(weights, dims: int):
    """A host array with `dims` axes from a Tensor or array, dropping leading axes of size 1 ([1, 1, T, T])."""
    array = weights.detach().numpy() if isinstance(weights, Tensor) else numpy.asarray(weights)
    while array.ndim > dims and array.shape[0] == 1:
        array = array[0]
    if array.ndim != dims:
        raise ValueError(f"expected {dims} axes (after dropping leading 1s), got shape {array.shape}")
    return array


def plot_attention(weights, tokens: Sequence[str] | None = None, ax=None, title: str | None = None,
                   cmap: str = "viridis"):
    """Heatmap of one attention map: weights [Tq, Tk], row i = how much query position i takes from each key.

    `tokens` label the keys (columns) and, aligned at the end, the queries (rows), so a cached decoder's
    Tq < Tk map is labelled right too. Returns the matplotlib Axes.
    """
    matrix = _as_matrix(weights, 2)
    if ax is None:
        size = min(6.0, 1.0 + 0.35 * max(matrix.shape))
        _, ax = _pyplot().subplots(figsize=(size + 0.8, size))
    image = ax.imshow(matrix, cmap=cmap, vmin=0.0, vmax=max(1e-12, float(matrix.max())))
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if tokens is not None:
        tokens = [_token_label(t) for t in tokens]
        if len(tokens) != matrix.shape[1]:
            raise ValueError(f"{len(tokens)} tokens for {matrix.shape[1]} key positions")
        ax.set_xticks(range(matrix.shape[1]), tokens)
        ax.set_yticks(range(matrix.shape[0]), tokens[matrix.shape[1] - matrix.shape[0]:])
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position")
    if title:
        ax.set_title(title)
    return ax


def _token_label(token) -> str:
    """A tick label that shows invisible characters: a space as '␣', a newline as '\\n'."""
    return "␣" if token == " " else repr(token)[1:-1] if isinstance(token, str) else str(token)


def plot_attention_heads(weights, tokens: Sequence[str] | None = None, ncols: int = 4, title: str | None = None):
    """One heatmap per head, side by side: weights [H, Tq, Tk] (or [1, H, Tq, Tk]). Returns the Figure."""
    maps = _as_matrix(weights, 3)
    heads = maps.shape[0]
    ncols = min(ncols, heads)
    nrows = -(-heads // ncols)
    panel = max(3.0, 1.2 + 0.2 * maps.shape[-1])  # inches: room for one tick label per key
    figure, axes = _pyplot().subplots(nrows, ncols, figsize=(panel * ncols, (panel - 0.2) * nrows), squeeze=False)
    for head, ax in enumerate(axes.flat):
        if head < heads:
            plot_attention(maps[head], tokens, ax=ax, title=f"head {head}")
        else:
            ax.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
