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
//! level, within 5e-5 at level 2 (checked in `tests/it/frontend_reference.rs`).
//! After a cold start (zero states) the first 9 embeddings of a call are wrong; the embedding
//! of a window is right once the call has seen its 76 frames.

use prost::Message;
use std::collections::{HashMap, HashSet};

use super::onnx::*;
use crate::pipeline::frontend::{BLOCK_FRAMES, N_MELS};
use crate::{Error, Result};

/// Input name of the streaming model: `[1, frames, 32]` scaled log-mel frames (`[B, frames,
/// 32]` in the batched form, one row of frames per stream).
pub const INPUT: &str = "mel";
/// Output name: `[frames / 8, 96]` embeddings (`[B * frames / 8, 96]` batched, stream by
/// stream).
pub const OUTPUT: &str = "embeddings";

/// The rewritten model: its bytes and the shape of each state input (in input order after
/// `mel`; the outputs after `embeddings` are the next states, in the same order).
pub struct StreamingModel {
    pub bytes: Vec<u8>,
    pub states: Vec<[usize; 4]>,
}

/// An integer-list attribute of a node.
fn ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    n.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
}

/// The error for a model that is not built the way the rewrite expects.
fn unexpected(what: impl std::fmt::Display) -> Error {
    Error::model(format!(
        "the base model does not have the structure hark streams: {what}"
    ))
}

/// Rewrites the base model (the bytes of `embedding_model.onnx`) into its streaming form, for
/// one stream a call.
pub fn rewrite(original: &[u8]) -> Result<StreamingModel> {
    rewrite_with_batch(original, Some(1))
}

/// The streaming form with a batch dimension, fixed (`Some(B)`) or open (`None`): the mel
/// input is `[B, frames, 32]`, each state `[B, cin, 2, w]` (stream `b`'s state at index `b`,
/// as [`StreamingModel::states`] gives it for one stream) and the embeddings
/// `[B * frames / 8, 96]`, stream by stream. One call runs the same number of new frames for
/// B streams.
pub fn rewrite_with_batch(original: &[u8], batch: Option<i64>) -> Result<StreamingModel> {
    let model = ModelProto::decode(original).map_err(|e| Error::Model {
        message: "not an ONNX model".into(),
        source: Some(e.into()),
    })?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::model("the model has no graph"))?;
    let input = graph.input.first().ok_or_else(|| unexpected("no input"))?;
    let mut streaming = Rewrite::new(graph, batch);
    for n in &graph.node {
        streaming.add(n, &input.name)?;
    }
    streaming.check_complete()?;
    Ok(streaming.into_model(&model))
}

/// The streaming graph as the rewrite builds it, one original node at a time.
struct Rewrite<'a> {
    graph: &'a GraphProto,
    weights: HashMap<&'a str, &'a TensorProto>,
    nodes: Vec<NodeProto>,
    /// Shape of each state input, and its description as a graph input and (`_next`) output.
    states: Vec<[usize; 4]>,
    state_inputs: Vec<ValueInfoProto>,
    state_outputs: Vec<ValueInfoProto>,
    /// Frequency width of the next layer's input.
    width: i64,
    /// Product of the pools' time strides so far.
    time_stride: i64,
    /// Output channels of the last convolution: the embedding's size.
    last_dim: i64,
    /// Whether the final reshape has been seen.
    finished: bool,
    /// The batch dimension (`None`: open).
    batch: Option<i64>,
}

impl<'a> Rewrite<'a> {
    fn new(graph: &'a GraphProto, batch: Option<i64>) -> Self {
        Rewrite {
            graph,
            weights: graph
                .initializer
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
            nodes: Vec::new(),
            states: Vec::new(),
            state_inputs: Vec::new(),
            state_outputs: Vec::new(),
            width: N_MELS as i64,
            time_stride: 1,
            last_dim: 0,
            finished: false,
            batch,
        }
    }

    /// Adds the streaming form of original node `n` (`input` is the model's input name).
    fn add(&mut self, n: &NodeProto, input: &str) -> Result<()> {
        if self.finished {
            return Err(unexpected(format!(
                "node {} after the final reshape",
                n.name
            )));
        }
        match n.op_type.as_str() {
            "Reshape" if n.input.first().map(String::as_str) == Some(input) => {
                self.nodes.push(node(
                    "Reshape",
                    &[INPUT, "hark_shape_in"],
                    &[&n.output[0]],
                    vec![],
                ));
            }
            "Reshape" => self.add_output(n),
            "Conv" => self.add_conv(n)?,
            "MaxPool" => self.add_pool(n)?,
            "LeakyRelu" | "Max" | "Relu" => self.nodes.push(n.clone()),
            other => return Err(unexpected(format!("operator {other} ({})", n.name))),
        }
        Ok(())
    }

    /// The final reshape: `[1, 96, frames / 8, 1]` -> `[frames / 8, 96]`.
    fn add_output(&mut self, n: &NodeProto) {
        self.nodes.push(node(
            "Transpose",
            &[&n.input[0]],
            &["hark_transposed"],
            vec![attr_ints("perm", &[0, 2, 1, 3])],
        ));
        self.nodes.push(node(
            "Reshape",
            &["hark_transposed", "hark_shape_out"],
            &[OUTPUT],
            vec![],
        ));
        self.finished = true;
    }

    /// A convolution with no padding in time and stride 1: as it is for a time kernel of 1,
    /// with a state for a time kernel of 3.
    fn add_conv(&mut self, n: &NodeProto) -> Result<()> {
        let Some(w) = n.input.get(1).and_then(|w| self.weights.get(w.as_str())) else {
            return Err(unexpected(format!("convolution {} has no weights", n.name)));
        };
        let &[cout, cin, kt, kf] = w.dims.as_slice() else {
            return Err(unexpected(format!("convolution {} is not 2-D", n.name)));
        };
        let pads = ints(n, "pads").unwrap_or(vec![0; 4]);
        let strides = ints(n, "strides").unwrap_or(vec![1, 1]);
        let dilations = ints(n, "dilations").unwrap_or(vec![1, 1]);
        let fits = |p: &[i64]| p.len() == 4 && p[0] == 0 && p[2] == 0 && p[1] + p[3] == kf - 1;
        if !fits(&pads) || strides != [1, 1] {
            return Err(unexpected(format!(
                "convolution {} pads or strides",
                n.name
            )));
        }
        if dilations != [1, 1] {
            return Err(unexpected(format!("convolution {} is dilated", n.name)));
        }
        self.last_dim = cout;
        match kt {
            1 => self.nodes.push(n.clone()),
            3 => self.add_stateful_conv(n, cin),
            _ => {
                return Err(unexpected(format!(
                    "convolution {} has time kernel {kt}",
                    n.name
                )))
            }
        }
        Ok(())
    }

    /// A convolution with a time kernel of 3 over `cin` channels: its input is the state (the
    /// last 2 rows it saw) followed by the new rows, and the last 2 of those are the next state.
    fn add_stateful_conv(&mut self, n: &NodeProto, cin: i64) {
        let k = self.states.len();
        let (state, cat, next) = (
            format!("state{k}"),
            format!("state{k}_cat"),
            format!("state{k}_next"),
        );
        self.states
            .push([1, cin, 2, self.width].map(|d| d as usize));
        let info_dims = [self.batch, Some(cin), Some(2), Some(self.width)];
        self.state_inputs.push(float_info(&state, &info_dims));
        self.state_outputs.push(float_info(&next, &info_dims));
        self.nodes.push(node(
            "Concat",
            &[&state, &n.input[0]],
            &[&cat],
            vec![attr_int("axis", 2)],
        ));
        self.nodes.push(node(
            "Slice",
            &[&cat, "hark_keep_starts", "hark_keep_ends", "hark_keep_axes"],
            &[&next],
            vec![],
        ));
        let mut conv = n.clone();
        conv.input[0] = cat;
        self.nodes.push(conv);
    }

    /// A max-pool whose windows neither overlap nor pad: kept as it is, its strides counted.
    fn add_pool(&mut self, n: &NodeProto) -> Result<()> {
        let kernel = ints(n, "kernel_shape").unwrap_or_default();
        let strides = ints(n, "strides").unwrap_or(vec![1, 1]);
        if kernel != strides || kernel.len() != 2 || ints(n, "pads").unwrap_or(vec![0; 4]) != [0; 4]
        {
            return Err(unexpected(format!("pool {} overlaps or pads", n.name)));
        }
        self.time_stride *= strides[0];
        self.width /= strides[1];
        self.nodes.push(n.clone());
        Ok(())
    }

    /// Checks that the walk ended on the final reshape with one embedding per block.
    fn check_complete(&self) -> Result<()> {
        let (time_stride, width) = (self.time_stride, self.width);
        if !self.finished || time_stride != BLOCK_FRAMES as i64 || width != 1 {
            return Err(unexpected(format!(
                "time stride {time_stride} (want {BLOCK_FRAMES}), final width {width}"
            )));
        }
        Ok(())
    }

    /// The streaming model: the new nodes, the weights they use plus the rewrite's constants,
    /// and the state inputs and outputs after the mel input and the embeddings.
    fn into_model(self, original: &ModelProto) -> StreamingModel {
        let used: HashSet<&str> = self
            .nodes
            .iter()
            .flat_map(|n| n.input.iter().map(|s| s.as_str()))
            .collect();
        let mut initializer: Vec<TensorProto> = self
            .graph
            .initializer
            .iter()
            .filter(|t| used.contains(t.name.as_str()))
            .cloned()
            .collect();
        initializer.extend([
            // 0 copies the input's batch dimension.
            int64s(
                "hark_shape_in",
                &[self.batch.unwrap_or(0), 1, -1, N_MELS as i64],
            ),
            int64s("hark_shape_out", &[-1, self.last_dim]),
            int64s("hark_keep_starts", &[-2]),
            int64s("hark_keep_ends", &[i64::MAX]),
            int64s("hark_keep_axes", &[2]),
        ]);
        let mut inputs = vec![float_info(INPUT, &[self.batch, None, Some(N_MELS as i64)])];
        inputs.extend(self.state_inputs);
        let mut outputs = vec![float_info(OUTPUT, &[None, Some(self.last_dim)])];
        outputs.extend(self.state_outputs);
        let streaming = ModelProto {
            ir_version: original.ir_version,
            producer_name: "hark".into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: "hark_streaming_embedding".into(),
                initializer,
                input: inputs,
                output: outputs,
            }),
            opset_import: original.opset_import.clone(),
        };
        StreamingModel {
            bytes: streaming.encode_to_vec(),
            states: self.states,
        }
    }
}
