#!/usr/bin/env python3
"""A measurement, not a test (CI does not run it): the word model cut into stages that run one
after another, so that only one stage's weights need be resident at a time.

Cuts EfficientWord-Net's 8-bit ResNet-50 (models/base/word_check.onnx) where one tensor alone
crosses: the quantised output of a residual block (after layer3.2, layer3.5, layer4.0 and
layer4.1), so each stage keeps its QuantizeLinear/DequantizeLinear pairs and ONNX Runtime fuses
it as it fuses the whole. Writes OUT/stage-1.onnx ... stage-5.onnx, prints each stage's nodes
and weight bytes, and checks that the stages run in turn give the whole model's embedding to
the bit on random inputs. Needs onnx and onnxruntime.

    python3 tests/probes/split_word_model.py models/base/word_check.onnx OUT
"""
import sys
import numpy as np
import onnx
import onnxruntime as ort
from onnx.utils import Extractor

BLOCK = "/feature_network/layer%s/relu_2/Relu_output_0_QuantizeLinear_Output"
CUTS = [BLOCK % "3/layer3.2", BLOCK % "3/layer3.5", BLOCK % "4/layer4.0", BLOCK % "4/layer4.1"]


def main(src, out):
    m = onnx.shape_inference.infer_shapes(onnx.load(src))
    names = ["input"] + CUTS + ["feature_output"]
    e = Extractor(m)
    paths = []
    for k in range(len(names) - 1):
        sub = e.extract_model([names[k]], [names[k + 1]])
        path = f"{out}/stage-{k + 1}.onnx"
        onnx.save(sub, path)
        paths.append(path)
        weights = sum(len(i.raw_data) for i in sub.graph.initializer)
        print(f"stage {k + 1}: {len(sub.graph.node)} nodes, {weights / 1e6:.2f} MB of weights")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    cpu = ["CPUExecutionProvider"]
    whole = ort.InferenceSession(src, so, providers=cpu)
    stages = [ort.InferenceSession(p, so, providers=cpu) for p in paths]
    rng = np.random.default_rng(0)
    for trial in range(5):
        x = rng.normal(-5, 3, (1, 1, 149, 64)).astype(np.float32)
        want = whole.run(None, {"input": x})[0]
        y = x
        for s in stages:
            y = s.run(None, {s.get_inputs()[0].name: y})[0]
        print(f"input {trial}: stages == whole: {np.array_equal(want, y)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
