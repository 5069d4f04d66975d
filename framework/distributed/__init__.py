"""Tensor parallelism for inference: collectives behind `Communicator`, parallel layers, the step
messages rank 0 broadcasts, the rank-0 engine and the worker loop.

This package knows nothing about model files or checkpoints: `model.tensor_parallel` decides which
layer of a decoder is split how, and `app.tensor_parallel` starts the processes.
"""
from framework.distributed.communicator import Communicator, TorchCommunicator, init_communicator
from framework.distributed.sharding import ShardSpec

__all__ = ["Communicator", "ShardSpec", "TorchCommunicator", "init_communicator"]
