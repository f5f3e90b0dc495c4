"""Export toolchain: DeepEncoder to ONNX and to TensorRT engines, with the lineage of every artifact."""
