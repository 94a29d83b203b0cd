"""Moonshine's decoder with its weights kept in int8 (a one-time rewrite of the .onnx file).

The weights ship as int8 with a scale and an offset per matrix, and the graph turns them
into float32 ahead of the decoder (a Cast, a Mul and an Add per weight, folded once when
ONNX Runtime loads the model). Every decoding step then reads ~165 MB of float32 weights
for one token: a step was bound by memory, ~16 ms on these machines. Here each MatMul on a
weight becomes ONNX Runtime's `DynamicQuantizeMatMul`, which reads the matrix in 8 bits
(4x less memory) and quantizes its input per call; the token embedding is gathered in int8
and dequantized per row. Same weights to the bit, stored as uint8 with the zero point moved
by 128 (ONNX Runtime's x86 kernels for uint8 inputs times int8 weights can saturate on CPUs
without AVX-512 VNNI, uint8 times uint8 cannot; 3 % slower here, where VNNI is there). The
input's rounding to 8 bits costs a little accuracy (docs/performance.md measures both).
Steps take about half the time, and the worker's model takes ~290 MB instead of ~710 MB.

The encoder stays float32: it reads each weight once for the whole segment (not bound by
memory), and quantizing its inputs cost more words than it saved time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def convert(source: str, target: str) -> None:
    """Write `source` (a Moonshine decoder prepared by moonshine_model.prepare) as `target`."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(source)
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    weights = _dequantized_weights(graph, initializers)
    dequantizing = {id(node) for w in weights.values() for node in w.nodes}
    added: set[str] = set()

    def initializer(name: str, value: np.ndarray) -> str:
        if name not in added:
            graph.initializer.append(numpy_helper.from_array(value, name))
            added.add(name)
        return name

    def int8_matmul(node, weight: _Weight, transposed: bool):
        """MatMul(x, W) on the 8-bit matrix; `transposed`: W is the stored matrix's transpose."""
        matrix = numpy_helper.to_array(initializers[weight.quantized])
        matrix = initializer(f"{weight.quantized}_uint8{'_transposed' if transposed else ''}",
                             np.ascontiguousarray((matrix.T if transposed else matrix).astype(np.int16) + 128).astype(np.uint8))
        zero_point = initializer(f"{weight.quantized}_zero_point_uint8", np.array([weight.z + 128], np.uint8))
        return helper.make_node("DynamicQuantizeMatMul", [node.input[0], matrix, weight.scale, zero_point],
                                list(node.output), name=f"{node.name}_int8", domain="com.microsoft")

    def rewrite(subgraph) -> None:
        producers = {out: node for node in subgraph.node for out in node.output}
        nodes = []
        for node in subgraph.node:
            weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
            source_of_b = producers.get(node.input[1]) if node.op_type == "MatMul" else None
            if weight is not None:
                nodes.append(int8_matmul(node, weight, transposed=False))
            elif source_of_b is not None and source_of_b.op_type == "Transpose" and source_of_b.input[0] in weights:
                # The output projection: the token embedding, transposed (kept int8 as well).
                weight = weights[source_of_b.input[0]]
                nodes.append(int8_matmul(node, weight, transposed=True))
            elif node.op_type == "Gather" and node.input[0] in weights:
                weight, out = weights[node.input[0]], node.output[0]
                nodes += [
                    helper.make_node("Gather", [weight.quantized, node.input[1]], [f"{out}_int8"], axis=0),
                    helper.make_node("Cast", [f"{out}_int8"], [f"{out}_cast"], to=onnx.TensorProto.FLOAT),
                    helper.make_node("Mul", [f"{out}_cast", weight.scale], [f"{out}_scaled"]),
                    helper.make_node("Add", [f"{out}_scaled", weight.offset], [out]),
                ]
            else:
                for attribute in node.attribute:
                    if attribute.type == onnx.AttributeProto.GRAPH:
                        rewrite(attribute.g)
                nodes.append(node)
        used = {name for node in nodes for name in node.input}
        nodes = [n for n in nodes if not (n.op_type == "Transpose" and n.input[0] in weights and n.output[0] not in used)]
        del subgraph.node[:]
        subgraph.node.extend(nodes)

    dequantize = [node for node in graph.node if id(node) in dequantizing]
    rest = [node for node in graph.node if id(node) not in dequantizing]
    del graph.node[:]
    graph.node.extend(rest)
    rewrite(graph)
    # Weights still used as float32 anywhere keep their dequantization; the rest goes.
    used = _inputs(graph)
    needed: set[str] = set()
    for node in reversed(dequantize):
        if any(out in used or out in needed for out in node.output):
            needed.update(node.input)
    kept = [node for node in dequantize if any(out in used or out in needed for out in node.output)]
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(kept + rest)
    used = _inputs(graph)
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, target)


@dataclass
class _Weight:
    """A weight the graph dequantizes: float = scale * (quantized - z) = quantized * scale + offset."""

    quantized: str  # initializer names
    scale: str
    offset: str
    z: int
    nodes: list  # the Cast, Mul and Add that dequantize it


def _dequantized_weights(graph, initializers) -> dict[str, _Weight]:
    """float32 weight name -> its int8 matrix: `Add(Mul(Cast(q), scale), offset)` on initializers."""
    from onnx import numpy_helper

    producers = {out: node for node in graph.node for out in node.output}
    found = {}
    for add in graph.node:
        mul = producers.get(add.input[0]) if add.op_type == "Add" else None
        cast = producers.get(mul.input[0]) if mul is not None and mul.op_type == "Mul" else None
        if cast is None or cast.op_type != "Cast" or not {cast.input[0], mul.input[1], add.input[1]} <= initializers.keys():
            continue
        scale = numpy_helper.to_array(initializers[mul.input[1]]).astype(np.float64)
        offset = numpy_helper.to_array(initializers[add.input[1]]).astype(np.float64)
        # q * scale + offset == scale * (q - z) with z = -offset / scale, an integer here.
        z = -offset / scale
        if scale.size != 1 or abs(z.item() - round(z.item())) > 1e-3 or abs(round(z.item())) > 127:
            continue  # not a per-matrix int8 grid: left as it is
        found[add.output[0]] = _Weight(cast.input[0], mul.input[1], add.input[1], round(z.item()), [cast, mul, add])
    return found


def _inputs(graph) -> set[str]:
    import onnx

    names: set[str] = set()
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                names |= _inputs(attribute.g)
    return names
