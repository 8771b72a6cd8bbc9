#!/usr/bin/env python3
# Per stage of the word model: resident memory a session adds, and CPU per run, prepacked (serve)
# against mapped lean (listen). One process per (stage, mode) so figures do not mix.
import sys, time, os, numpy as np, onnxruntime as ort, subprocess, json
M = "/work/main/models/base/word_check.stage-%d.onnx"
def rss():
    for l in open("/proc/self/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
def one(k, mode):
    so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
    so.enable_mem_pattern = False
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    prov = ["CPUExecutionProvider"]
    path = M % k
    if mode == "lean":
        ortp = f"/tmp/stage{k}.ort"
        if not os.path.exists(ortp):
            s2 = ort.SessionOptions(); s2.graph_optimization_level = so.graph_optimization_level
            s2.optimized_model_filepath = ortp; s2.add_session_config_entry("session.save_model_format", "ORT")
            ort.InferenceSession(path, s2, providers=prov)
        so.add_session_config_entry("session.use_ort_model_bytes_directly", "1")
        so.add_session_config_entry("session.use_ort_model_bytes_for_initializers", "1")
        so.add_session_config_entry("session.disable_prepacking", "1")
        so.enable_cpu_mem_arena = False
        path = ortp
    # inputs: chain real shapes by running previous stages once (prepacked, not measured)
    x = np.load(f"/tmp/in{k}.npy")
    warm = ort.InferenceSession("/work/main/models/base/melspectrogram.onnx", providers=prov)
    base = rss()
    s = ort.InferenceSession(path, so, providers=prov)
    after_load = rss()
    ts = []
    for i in range(15):
        t = time.process_time(); s.run(None, {s.get_inputs()[0].name: x}); ts.append(time.process_time() - t)
    print(json.dumps(dict(stage=k, mode=mode, load_mb=(after_load - base) / 1024, run_mb=(rss() - after_load) / 1024, ms=1000 * sorted(ts)[len(ts) // 2])))
if len(sys.argv) > 1:
    one(int(sys.argv[1]), sys.argv[2]); sys.exit()
x = np.random.default_rng(1).standard_normal((1, 1, 149, 64)).astype(np.float32)
for j in range(1, 6):
    np.save(f"/tmp/in{j}.npy", x)
    s = ort.InferenceSession(M % j, providers=["CPUExecutionProvider"])
    x = s.run(None, {s.get_inputs()[0].name: x})[0]
for k in range(1, 6):
    for mode in ["packed", "lean"]:
        subprocess.run([sys.executable, __file__, str(k), mode])
