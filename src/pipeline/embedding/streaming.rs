//! The base model in streaming form, rewritten from `embedding_model.onnx` when it is loaded.
//!
//! The base model is a stack of convolutions over (time, frequency) with no padding in time,
//! and max-pools whose strides in time multiply to 8 frames: exactly one 80 ms block. So two
//! windows 8 frames apart share all but their newest rows at every layer, and each embedding
//! only needs the rows the newest block adds. The rewrite gives every convolution with a time
//! kernel of 3 a state input holding the last 2 rows it saw, concatenated before the new rows,
//! and a state output holding its last 2 rows for the next call. One call then takes any
//! multiple of 8 new frames and yields one embedding per 8 frames, at about a fifth of the cost
//! of running the whole 76-frame window each time.
//!
//! The pooling grid lines up with the windows when each call starts 4 frames past a window
//! start (76 = 9 x 8 + 4), which is where every 80 ms block starts. With that alignment the
//! embeddings are the original model's: bit for bit at ONNX Runtime's default optimisation
//! level, within 5e-5 at level 2 (checked in `tests/frontend_reference.rs`).
//! After a cold start (zero states) the first 9 embeddings of a call are wrong; the embedding
//! of a window is right once the call has seen its 76 frames.

use prost::Message;
use std::collections::{HashMap, HashSet};

use super::onnx::*;
use crate::pipeline::frontend::{BLOCK_FRAMES, N_MELS};
use crate::{Error, Result};

/// Input name of the streaming model: `[1, frames, 32]` scaled log-mel frames.
pub const INPUT: &str = "mel";
/// Output name: `[frames / 8, 96]` embeddings.
pub const OUTPUT: &str = "embeddings";

/// The rewritten model: its bytes and the shape of each state input (in input order after
/// `mel`; the outputs after `embeddings` are the next states, in the same order).
pub struct StreamingModel {
    pub bytes: Vec<u8>,
    pub states: Vec<[usize; 4]>,
}

fn ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

/// Rewrites the base model (the bytes of `embedding_model.onnx`) into its streaming form.
pub fn rewrite(original: &[u8]) -> Result<StreamingModel> {
    let model = ModelProto::decode(original).map_err(|e| Error::Model {
        message: "not an ONNX model".into(),
        source: Some(e.into()),
    })?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::model("the model has no graph"))?;
    let unexpected = |what: String| -> Result<StreamingModel> {
        Err(Error::model(format!(
            "the base model does not have the structure hark streams: {what}"
        )))
    };
    let Some(input) = graph.input.first() else {
        return unexpected("no input".into());
    };
    let weights: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();

    let mut nodes = Vec::new();
    let mut states: Vec<[usize; 4]> = Vec::new();
    let mut state_infos = (Vec::new(), Vec::new());
    let mut width = N_MELS as i64;
    let mut time_stride = 1i64;
    let mut last_dim = 0i64;
    let mut finished = false;
    for n in &graph.node {
        if finished {
            return unexpected(format!("node {} after the final reshape", n.name));
        }
        match n.op_type.as_str() {
            "Reshape" if n.input.first() == Some(&input.name) => {
                nodes.push(node(
                    "Reshape",
                    &[INPUT, "hark_shape_in"],
                    &[&n.output[0]],
                    vec![],
                ));
            }
            "Reshape" => {
                // [1, 96, frames / 8, 1] -> [frames / 8, 96]
                nodes.push(node(
                    "Transpose",
                    &[&n.input[0]],
                    &["hark_transposed"],
                    vec![attr_ints("perm", &[0, 2, 1, 3])],
                ));
                nodes.push(node(
                    "Reshape",
                    &["hark_transposed", "hark_shape_out"],
                    &[OUTPUT],
                    vec![],
                ));
                finished = true;
            }
            "Conv" => {
                let Some(w) = n.input.get(1).and_then(|w| weights.get(w.as_str())) else {
                    return unexpected(format!("convolution {} has no weights", n.name));
                };
                let &[cout, cin, kt, kf] = w.dims.as_slice() else {
                    return unexpected(format!("convolution {} is not 2-D", n.name));
                };
                let pads = ints(n, "pads").unwrap_or(vec![0; 4]);
                let strides = ints(n, "strides").unwrap_or(vec![1, 1]);
                let dilations = ints(n, "dilations").unwrap_or(vec![1, 1]);
                let fits =
                    |p: &[i64]| p.len() == 4 && p[0] == 0 && p[2] == 0 && p[1] + p[3] == kf - 1;
                if !fits(&pads) || strides != [1, 1] {
                    return unexpected(format!("convolution {} pads or strides", n.name));
                }
                if dilations != [1, 1] {
                    return unexpected(format!("convolution {} is dilated", n.name));
                }
                last_dim = cout;
                match kt {
                    1 => nodes.push(n.clone()),
                    3 => {
                        let k = states.len();
                        let (state, cat, next) = (
                            format!("state{k}"),
                            format!("state{k}_cat"),
                            format!("state{k}_next"),
                        );
                        let dims = [1, cin, 2, width];
                        states.push(dims.map(|d| d as usize));
                        let info_dims = dims.map(Some);
                        state_infos.0.push(float_info(&state, &info_dims));
                        state_infos.1.push(float_info(&next, &info_dims));
                        nodes.push(node(
                            "Concat",
                            &[&state, &n.input[0]],
                            &[&cat],
                            vec![attr_int("axis", 2)],
                        ));
                        nodes.push(node(
                            "Slice",
                            &[&cat, "hark_keep_starts", "hark_keep_ends", "hark_keep_axes"],
                            &[&next],
                            vec![],
                        ));
                        let mut conv = n.clone();
                        conv.input[0] = cat;
                        nodes.push(conv);
                    }
                    _ => return unexpected(format!("convolution {} has time kernel {kt}", n.name)),
                }
            }
            "MaxPool" => {
                let kernel = ints(n, "kernel_shape").unwrap_or_default();
                let strides = ints(n, "strides").unwrap_or(vec![1, 1]);
                if kernel != strides
                    || kernel.len() != 2
                    || ints(n, "pads").unwrap_or(vec![0; 4]) != [0; 4]
                {
                    return unexpected(format!("pool {} overlaps or pads", n.name));
                }
                time_stride *= strides[0];
                width /= strides[1];
                nodes.push(n.clone());
            }
            "LeakyRelu" | "Max" | "Relu" => nodes.push(n.clone()),
            other => return unexpected(format!("operator {other} ({})", n.name)),
        }
    }
    if !finished || time_stride != BLOCK_FRAMES as i64 || width != 1 {
        return unexpected(format!(
            "time stride {time_stride} (want {BLOCK_FRAMES}), final width {width}"
        ));
    }

    let used: HashSet<&str> = nodes
        .iter()
        .flat_map(|n| n.input.iter().map(|s| s.as_str()))
        .collect();
    let mut initializer: Vec<TensorProto> = graph
        .initializer
        .iter()
        .filter(|t| used.contains(t.name.as_str()))
        .cloned()
        .collect();
    initializer.extend([
        int64s("hark_shape_in", &[1, 1, -1, N_MELS as i64]),
        int64s("hark_shape_out", &[-1, last_dim]),
        int64s("hark_keep_starts", &[-2]),
        int64s("hark_keep_ends", &[i64::MAX]),
        int64s("hark_keep_axes", &[2]),
    ]);
    let mut inputs = vec![float_info(INPUT, &[Some(1), None, Some(N_MELS as i64)])];
    inputs.extend(state_infos.0);
    let mut outputs = vec![float_info(OUTPUT, &[None, Some(last_dim)])];
    outputs.extend(state_infos.1);
    let streaming = ModelProto {
        ir_version: model.ir_version,
        producer_name: "hark".into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "hark_streaming_embedding".into(),
            initializer,
            input: inputs,
            output: outputs,
        }),
        opset_import: model.opset_import.clone(),
    };
    Ok(StreamingModel {
        bytes: streaming.encode_to_vec(),
        states,
    })
}
