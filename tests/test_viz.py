"""tinytensor.viz: the autograd graph as DOT text (checked node by node and edge by edge), SVG and matplotlib
drawings, and attention heatmaps."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tinytensor as tt
import tinytensor.nn as nn
from tinytensor import viz

OP = 'shape=box, style="rounded,filled", fillcolor="#dbe8f7"'
LEAF = 'shape=ellipse, style=filled, fillcolor="#f7e7c6"'


def dot_body(dot: str) -> list[str]:
    """The node and edge lines of a DOT text, without the digraph header and closing brace."""
    lines = dot.strip().splitlines()
    assert lines[0] == "digraph autograd {" and lines[-1] == "}"
    return [line.strip() for line in lines[2:-1]]


def test_dot_of_a_linear_layer_loss_lists_every_node_and_edge():
    x = tt.randn(2, 3, requires_grad=True)
    w = tt.randn(3, 4, requires_grad=True)
    b = tt.zeros(4, requires_grad=True)
    loss = (x @ w + b).sum()
    assert dot_body(viz.to_dot(loss, names={x: "x", w: "w", b: "b"})) == [
        f'n0 [label="Sum\\n[] float32", {OP}];',
        f'n1 [label="Add\\n[2, 4] float32", {OP}];',
        f'n2 [label="MatMul\\n[2, 4] float32", {OP}];',
        f'n3 [label="b\\n[4] float32", {LEAF}];',
        f'n4 [label="x\\n[2, 3] float32", {LEAF}];',
        f'n5 [label="w\\n[3, 4] float32", {LEAF}];',
        "n1 -> n0;",
        "n2 -> n1;",
        "n3 -> n1;",
        "n4 -> n2;",
        "n5 -> n2;",
    ]


def test_graph_nodes_give_each_node_its_inputs_in_argument_order():
    a = tt.randn(3, 1, dtype=tt.float64, requires_grad=True)
    c = tt.randn(4, dtype=tt.float64, requires_grad=True)
    total = (a - c).mean()
    nodes = viz.graph_nodes(total)
    assert [(n.id, n.kind, n.name, n.shape, n.dtype, n.inputs) for n in nodes] == [
        ("n0", "op", "Mean", (), "float64", ["n1"]),
        ("n1", "op", "Sub", (3, 4), "float64", ["n2", "n3"]),   # broadcast shape, read from Mean's input_shapes
        ("n2", "leaf", "", (3, 1), "float64", []),
        ("n3", "leaf", "", (4,), "float64", []),
    ]


def test_an_input_used_twice_gets_two_edges_and_one_node():
    x = tt.randn(5, requires_grad=True)
    lines = dot_body(viz.to_dot(x * x, names={x: "x"}))
    assert lines == [f'n0 [label="Mul\\n[5] float32", {OP}];', f'n1 [label="x\\n[5] float32", {LEAF}];',
                     "n1 -> n0;", "n1 -> n0;"]


def test_inputs_that_need_no_gradient_are_not_drawn():
    x = tt.randn(2, 2, requires_grad=True)
    constant = tt.randn(2, 2)
    nodes = viz.graph_nodes(x * constant)
    assert [(n.name, n.kind, n.inputs) for n in nodes] == [("Mul", "op", ["n1"]), ("", "leaf", [])]


def test_dtypes_follow_a_cast_through_the_graph():
    x = tt.randn(3, requires_grad=True)                      # float32
    doubled = (x * 2.0).double()                             # Mul in float32, then Cast to float64
    nodes = viz.graph_nodes((doubled * doubled).sum())
    assert [(n.name, n.dtype) for n in nodes] == [
        ("Sum", "float64"), ("Mul", "float64"), ("Cast", "float64"), ("Mul", "float32"), ("", "float32")]


def test_a_leaf_tensor_is_a_graph_of_one_node():
    w = tt.ones(2, 3, dtype=tt.float64, requires_grad=True)
    assert dot_body(viz.to_dot(w, names={w: "weight"})) == [f'n0 [label="weight\\n[2, 3] float64", {LEAF}];']


def test_parameter_names_label_a_module_graph():
    layer = nn.Linear(3, 2)
    out = layer(tt.randn(4, 3)).sum()
    names = {p: name for name, p in layer.named_parameters()}
    labels = [n.label for n in viz.graph_nodes(out, names) if n.kind == "leaf"]
    assert sorted(labels) == ["bias\n[2] float32", "weight\n[2, 3] float32"]


def test_labels_with_quotes_are_escaped_in_dot():
    x = tt.randn(1, requires_grad=True)
    assert 'label="say \\"hi\\"\\n[1] float32"' in viz.to_dot(x, names={x: 'say "hi"'})


def test_a_graph_deeper_than_the_recursion_limit_is_drawn():
    x = tt.randn(1, requires_grad=True)
    y = x
    for _ in range(sys.getrecursionlimit() + 500):
        y = y + 1.0
    nodes = viz.graph_nodes(y)
    assert len(nodes) == sys.getrecursionlimit() + 501 and nodes[-1].kind == "leaf"


def test_importing_viz_pulls_in_neither_matplotlib_nor_graphviz():
    code = "import sys, tinytensor.viz; print('matplotlib' in sys.modules, 'graphviz' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_render_svg_without_graphviz_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # makes `import graphviz` raise ImportError
    with pytest.raises(ImportError, match=r"\.\[viz\]"):
        viz.render_svg(tt.randn(2, requires_grad=True))


def test_render_svg_writes_an_svg_file(tmp_path):
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")
    x = tt.randn(2, requires_grad=True)
    svg = viz.render_svg((x * x).sum(), tmp_path / "graph.svg", names={x: "x"})
    assert "<svg" in svg and (tmp_path / "graph.svg").read_text(encoding="utf-8") == svg


@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_plot_graph_draws_one_label_per_node(pyplot):
    x = tt.randn(2, requires_grad=True)
    ax = viz.plot_graph((x * 3.0).sum(), names={x: "x"})
    assert sorted(text.get_text() for text in ax.texts if text.get_text()) == ["Mul\n[2] float32", "Sum\n[] float32",
                                                           "x\n[2] float32"]


def test_plot_attention_labels_keys_and_queries(pyplot):
    weights = np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None]
    ax = viz.plot_attention(tt.tensor(weights)[None, None], tokens=["a", "b", "\n"], title="causal")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "\\n"]
    np.testing.assert_allclose(ax.images[0].get_array(), weights)
    assert ax.get_title() == "causal"


def test_plot_attention_rejects_a_token_list_of_the_wrong_length(pyplot):
    with pytest.raises(ValueError, match="2 tokens for 3 key positions"):
        viz.plot_attention(np.eye(3), tokens=["a", "b"])


def test_plot_attention_heads_draws_one_map_per_head(pyplot):
    figure = viz.plot_attention_heads(np.full((3, 2, 2), 0.5), ncols=2)
    assert sum(1 for ax in figure.axes if ax.images) == 3
