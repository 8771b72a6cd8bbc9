"""The word model as hark runs it, made from EfficientWord-Net's 8-bit ResNet-50 by .ci/setup
(PyPI onnx, in target/venv-onnx): its largest float convolution made integer, then the model
cut into five stages that run one after another (docs/research/cost.md, "The word model in
stages" and "The downsample convolution made integer").

1. ONNX Runtime leaves 20 of the model's 53 convolutions in float (each residual block's first
   and its downsample: the ones reading the block's input, which the residual sum reads too),
   so a check dequantises their int8 weights into float and frees them again. The largest,
   layer4.0's downsample (2 M weights: 8 MB as floats), is rewritten as one QLinearConv on the
   same int8 tensors, which the runtime's other 33 are fused into. Only convolutions with at
   least SMALLEST weights are (default 1,000,000: that one alone; smaller ones measured slower
   and no smaller).
2. The cuts are where one tensor alone crosses: the quantised output of residual blocks layer3.2,
   layer3.5, layer4.0 and layer4.1.

Usage: python word-model.py IN.onnx OUT_DIR [SMALLEST]
Writes OUT_DIR/word_check.stage-{1..5}.onnx.part (onnx 1.23.2 writes the same bytes each time).
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.utils import Extractor

BLOCK = "/feature_network/layer%s/relu_2/Relu_output_0_QuantizeLinear_Output"
CUTS = [BLOCK % b for b in ("3/layer3.2", "3/layer3.5", "4/layer4.0", "4/layer4.1")]


def left_in_float(name):
    """The convolutions ONNX Runtime does not fuse: each block's first and its downsample."""
    return "/layer" in name and ("/conv1/" in name or "/downsample" in name)


def integer_conv(conv, q, dqs, init):
    """QLinearConv for DequantizeLinear(x, w, b) -> `conv` -> QuantizeLinear `q`: the same
    int8 tensors, the bias requantised to the input's scale times the weights'."""
    (x, xs, xz), (w, ws, wz), (b, bs, bz) = (d.input for d in dqs)
    arr = lambda n: numpy_helper.to_array(init[n]).astype(np.float64)
    bias = np.round((arr(b) - arr(bz)) * arr(bs) / (arr(xs) * arr(ws))).astype(np.int32)
    bias_name = f"{conv.name}/integer_bias"
    node = helper.make_node(
        "QLinearConv",
        [x, xs, xz, w, ws, wz, q.input[1], q.input[2], bias_name],
        [q.output[0]],
        name=f"{conv.name}/integer",
    )
    node.attribute.extend(conv.attribute)
    return node, numpy_helper.from_array(bias, bias_name)


def fuse(model, smallest):
    """Rewrites each float convolution with at least `smallest` weights; returns how many."""
    g = model.graph
    init = {i.name: i for i in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    swap = {}
    for n in g.node:
        after = users.get(n.output[0], [])
        dqs = [prod.get(i) for i in n.input]
        if n.op_type != "Conv" or not left_in_float(n.name) or len(dqs) != 3:
            continue
        if len(after) != 1 or after[0].op_type != "QuantizeLinear":
            continue
        if any(d is None or d.op_type != "DequantizeLinear" for d in dqs):
            continue
        if int(np.prod(init[dqs[1].input[0]].dims)) < smallest:
            continue
        node, bias = integer_conv(n, after[0], dqs, init)
        g.initializer.append(bias)
        swap[id(n)], swap[id(after[0])] = node, None
    nodes = [swap.get(id(n), n) for n in g.node]
    nodes = [n for n in nodes if n is not None]
    del g.node[:]
    g.node.extend(nodes)
    # The DequantizeLinear nodes nothing reads any more, then the initializers nothing uses.
    read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    dead = [n for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] not in read]
    for n in dead:
        g.node.remove(n)
    read = {i for n in g.node for i in n.input}
    kept = [i for i in g.initializer if i.name in read]
    del g.initializer[:]
    g.initializer.extend(kept)
    return len(swap) // 2


def main(src, out, smallest):
    model = onnx.load(src)
    fused = fuse(model, smallest)
    onnx.checker.check_model(model)
    names = ["input"] + CUTS + ["feature_output"]
    e = Extractor(onnx.shape_inference.infer_shapes(model))
    for k in range(len(names) - 1):
        stage = e.extract_model([names[k]], [names[k + 1]])
        onnx.save(stage, f"{out}/word_check.stage-{k + 1}.onnx.part")
    print(f"word model: {fused} convolution(s) made integer, 5 stages", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000)
