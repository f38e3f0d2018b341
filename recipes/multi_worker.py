"""`--strategy=multi_worker`: tf.distribute's MultiWorkerMirroredStrategy under Keras 3's `fit`.

Keras 3 (up to 3.15 at least) cannot `fit` under this strategy as released: upstream
keras-team/keras#20585 and tensorflow/tensorflow#72388, both open. Two steps of its TensorFlow
trainer reduce per-replica values eagerly in ways the collective strategy refuses:

1. before the first step, `_maybe_symbolic_build` takes the MEAN of the first distributed *data
   batch* across workers only to learn its shapes (and would average uint8 images), which fails
   with "Attempt to convert a value (PerReplica...) to a Tensor";
2. after every step, `reduce_per_replica` reduces each scalar metric with `axis=0`, which a scalar
   does not have ("Invalid reduction dimension 0 for input with 0 dimensions").

A third step fails under mixed bfloat16: `predict` concatenates the replicas' outputs with a
collective gather (`CollectiveGatherV2`), which has no bfloat16 kernel (nor uint8 or bool ones), so
`predict` on a model whose output is bfloat16 (SimCLR's encoder, pooled features in the compute
dtype) stopped every worker with "Value passed to parameter 'input' has DataType bfloat16 not in
list of allowed values: float32, float16, float64, int32, int64".

`patch_keras()` replaces those steps, for this strategy only: the symbolic build takes the
first local replica's batch (shapes are what it needs), scalars are averaged across workers
without an axis, and values of a dtype the gather lacks are gathered in a wider one (bfloat16 as
float32, integers and booleans as int64: exact) and cast back, so `predict` returns what it returns
on one worker. Everything else (the synchronous all-reduce of gradients, the families' own
`train_step`s) is Keras' and TensorFlow's own.
"""

import functools
import socket

import tensorflow as tf

from zoo.errors import ZooError

# The dtypes the collective gather (`CollectiveGatherV2`) has kernels for.
GATHERED_DTYPES = (tf.float32, tf.float16, tf.float64, tf.int32, tf.int64)


def _local(strategy, value):
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


def gather_dtype(dtype):
    """The dtype a value of `dtype` is gathered across workers in: its own where the collective gather
    has a kernel for it, else one that holds every value exactly (float32 for bfloat16, int64 for
    integers and booleans)."""
    dtype = tf.as_dtype(dtype)
    if dtype in GATHERED_DTYPES or not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
        return dtype
    return tf.float32 if dtype.is_floating else tf.int64


def _cast(strategy, value, dtype):
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.run(lambda v: tf.cast(v, dtype), args=(value,))
    return tf.cast(value, dtype)


@functools.cache
def patch_keras():
    """Make Keras 3's TensorFlow trainer fit under MultiWorkerMirroredStrategy (see the module doc)."""
    try:
        from keras.src import tree
        from keras.src.backend.tensorflow import trainer
    except ImportError as e:
        raise ZooError(f"--strategy=multi_worker needs Keras 3 with the TensorFlow backend ({e})") from None
    if not all(hasattr(trainer, n) for n in ("reduce_per_replica", "_collective_all_reduce_multi_worker")):
        raise ZooError("--strategy=multi_worker: this Keras version's trainer is not the one it was checked with")
    build, reduce_per_replica = trainer.TensorFlowTrainer._maybe_symbolic_build, trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is None or not trainer._collective_all_reduce_multi_worker(self.distribute_strategy):
            return build(self, iterator, data_batch)
        for _, _, it in iterator:
            data_batch = tree.map_structure(functools.partial(_local, self.distribute_strategy), next(it))
            break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce(values, strategy, reduction):
        if not trainer._collective_all_reduce_multi_worker(strategy):
            return reduce_per_replica(values, strategy, reduction)
        if reduction == "concat":  # predict: a collective gather
            return gathered(values, strategy)
        if reduction not in ("auto", "mean"):
            return reduce_per_replica(values, strategy, reduction)

        def mean(v):
            if not isinstance(v, tf.distribute.DistributedValues):
                return v
            return strategy.reduce("MEAN", v, axis=0 if _local(strategy, v).shape.rank else None)

        return tree.map_structure(mean, values)

    def gathered(values, strategy):
        def widened(v):
            dtype = getattr(_local(strategy, v), "dtype", None)
            return v if dtype is None or gather_dtype(dtype) == dtype else _cast(strategy, v, gather_dtype(dtype))

        def narrowed(out, v):
            dtype = getattr(_local(strategy, v), "dtype", None)
            return out if dtype is None or out.dtype == dtype else tf.cast(out, dtype)

        result = reduce_per_replica(tree.map_structure(widened, values), strategy, "concat")
        return tree.map_structure(narrowed, result, values)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce


def local_cluster(n):
    """TF_CONFIG values for `n` workers on this machine (127.0.0.1, free ports): one per process."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    workers = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}} for i in range(n)]
