"""From a RunConfig to the pieces of a run: data iterators, model, optimizer, mesh,
shardings and the compiled steps. Every user mistake surfaces here as a ConfigError,
before anything is written to disk (the checks are ``optlab.train.checks``'s and
``optlab.data.check_dataset``'s)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from optlab import config as config_lib
from optlab.data import BatchIterator, check_dataset, load_dataset, wrap_iterator
from optlab.data.augment import augment
from optlab.errors import MissingExtraError
from optlab.models import LayeredModel, create_model
from optlab.models.adapters import as_apply
from optlab.parallel import (
    STRATEGIES,
    make_mesh,
)
from optlab.train import checks, lm
from optlab.train.layout import default_mesh, state_shardings
from optlab.train.matrices import model_matrices
from optlab.train.pmap_step import PmapAdapter, check_pmap, make_pmap_step, sync_batchnorm
from optlab.train.remat import rematerialized
from optlab.train.spec import StepSpec
from optlab.train.state import TrainState, create_state
from optlab.train.step import make_eval_step, make_train_step

EVAL_BATCH = 256
# A training split up to this size is kept on the device and batches are gathered there
# from row indices: the host then sends a few hundred integers a step instead of the rows.
DEVICE_DATA_BYTES = 256 * 2**20
# Compute dtypes; weights and optimizer state stay float32 ("master weights").
PRECISIONS = {"fp32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}
INITIAL_LOSS_SCALE = 2.0**15  # float16's dynamic loss scaling starts here and adapts


@dataclasses.dataclass
class Setup:
    cfg: Any  # the resolved RunConfig: the recipe's values filled in where none was given
    sources: dict  # "section.field" -> "given", "recipe DATASET/MODEL" or "default"
    mesh: Any
    batch_sharding: NamedSharding  # train batches ((K, B, ...) with accumulation)
    eval_sharding: NamedSharding  # evaluation batches (B, ...)
    train_iter: Any
    eval_batches: Callable[[str], Iterator[dict]]
    init_state: Callable[[], TrainState]
    abstract_state: Any
    next_batch: Callable[[], dict]  # the host's next training batch (rows, or indices)
    spec: StepSpec  # the step, described once (the lab's steps replace parts of it)
    train_step: Callable
    monitored_step: Callable  # the same step plus gradient norms and update ratio (logged steps)
    eval_step: Callable
    total_steps: int
    steps_per_epoch: int
    params_template: Any
    dataset: Any
    model: Any
    apply_fn: Callable  # the model's apply(variables, x, train=, rngs=, mutable=)
    tokens_per_step: int = 0  # a language model's tokens a step (global); 0 otherwise
    flops_per_token: float = 0.0  # its training FLOPs per token (optlab.train.throughput)
    # --parallel pmap: the loop's state is replicated (n, ...); these convert it at the edges
    # (identity on the jit path). See optlab.train.pmap_step.PmapAdapter.
    replicate: Callable = lambda state: state
    unreplicate: Callable = lambda state: state


def _err(msg: str) -> config_lib.ConfigError:
    return config_lib.ConfigError(msg)


def _fails(fn: Callable) -> bool:
    """Whether tracing ``fn`` (under ``jax.eval_shape``) raises a TypeError/ValueError."""
    try:
        jax.eval_shape(fn)
    except (TypeError, ValueError):
        return True
    return False


def _layered(model: Any) -> bool:
    """optlab's MLP or CNN: their layers take ``remat`` and ``batchnorm_axis_name``."""
    return isinstance(model, LayeredModel)


def build_setup(
    cfg: config_lib.RunConfig,
    *,
    mesh=None,
    model: Any = None,
    dataset: Any = None,
    train_batches: Any = None,
) -> Setup:
    """Everything a run needs. Optional replacements for what the config names:

    * ``model``: your own model — a linen Module, an NNX Module, or
      ``optlab.models.from_apply(apply_fn, params)``;
    * ``dataset``: your own ``optlab.data.Dataset`` (its splits are used as the built-in
      datasets' are);
    * ``train_batches``: any iterable of training batches (``(x, y)`` pairs or dicts; a
      grain or PyTorch loader) of one fixed size, ``batch_size × accumulate`` examples (per
      process: each process passes its own share). If it has ``state()``/``restore()`` (or
      ``get_state``/``set_state``, ``state_dict``/``load_state_dict``) its position is
      checkpointed; otherwise a resumed run restarts it. Needs ``--steps``.
    """

    cfg.validate()  # the types, as a config file's are (from Python too)
    cfg, sources = config_lib.resolve_recipe(cfg)
    dc, mc, tc = cfg.data, cfg.model, cfg.train
    checks.check_config(cfg)
    if tc.precision not in PRECISIONS:
        raise _err(f"train.precision: unknown {tc.precision!r}; choose from {sorted(PRECISIONS)}")

    own_dataset = dataset is not None
    options = dict(mc.options)
    if dataset is None and lm.is_token_dataset(dc.dataset):
        dataset = lm.load_token_data(cfg, options.pop("block_size", lm.DEFAULT_BLOCK_SIZE))
    language = isinstance(dataset, lm.TokenData)  # a language model on token windows
    if language and model is None and mc.model != "gpt":
        raise _err(
            f"model.model {mc.model}: --dataset {dc.dataset} is token data for a language "
            "model; use --model gpt"
        )
    if dataset is None:
        try:
            dataset = load_dataset(
                dc.dataset, seed=tc.seed, data_dir=dc.data_dir, val_fraction=dc.val_fraction
            )
        except (ValueError, MissingExtraError) as err:
            raise _err(f"data.dataset {dc.dataset}: {err}") from err
    elif not language:
        try:
            check_dataset(dataset, "your dataset")
        except ValueError as err:
            raise _err(str(err)) from err
    if train_batches is not None and tc.steps is None:
        raise _err("train.steps: training from your own iterator needs a number of steps")
    if mesh is None:
        if tc.strategy not in STRATEGIES:
            raise _err(
                f"train.strategy: unknown {tc.strategy!r}; choose from {', '.join(STRATEGIES)}"
            )
        mesh = make_mesh(tc.mesh) if tc.mesh else default_mesh()
    data_size = mesh.shape["data"]

    check_pmap(cfg, mesh)
    processes = jax.process_count()
    global_batch = dc.batch_size * tc.accumulate
    n_train = len(dataset.tokens("train")) if language else len(dataset.x_train)
    if train_batches is None and dc.mode != "full" and dc.batch_size > n_train and not language:
        raise _err(
            f"data.batch_size {dc.batch_size} is larger than the {len(dataset.x_train)} training "
            "examples; use a smaller batch or data.mode full"
        )
    if dc.mode == "online" and data_size > 1:
        raise _err(
            f"data.mode online takes one example a step, which cannot be split over the "
            f"{data_size} shards of the mesh's data axis; use train.mesh data=1 (a model axis "
            "is fine)"
        )
    if dc.mode == "full" and train_batches is None and len(dataset.x_train) % data_size:
        raise _err(
            f"data.mode full: the {len(dataset.x_train)} training examples do not divide by the "
            f"{data_size} data shards; use a train.mesh data size that divides them"
        )
    if dc.mode != "full" and dc.batch_size % data_size:
        raise _err(f"data.batch_size {dc.batch_size} must divide by the {data_size} data shards")
    if train_batches is not None:
        train_iter = wrap_iterator(train_batches, batch_size=global_batch // processes)
        steps_per_epoch = max(1, math.ceil(n_train / global_batch))
    elif language:
        train_iter = lm.train_iterator(
            dataset,
            batch_size=global_batch,
            seed=tc.seed,
            process_index=jax.process_index(),
            process_count=processes,
        )
        steps_per_epoch = max(1, train_iter.steps_per_epoch)
    else:
        try:
            train_iter = BatchIterator(
                dataset.x_train,
                dataset.y_train,
                batch_size=None if dc.mode == "online" else global_batch,
                seed=tc.seed,
                mode=dc.mode,
                replacement=dc.replacement,
                process_index=jax.process_index(),
                process_count=processes,
                batch_size_schedule=dc.batch_growth,
            )
        except ValueError as err:
            raise _err(f"data.batch_size/data.mode: {err}") from err
        steps_per_epoch = max(1, train_iter.steps_per_epoch)
    total = tc.steps if tc.steps is not None else tc.epochs * steps_per_epoch

    classification = dataset.task == "classification"
    loss = "next_token" if language else "cross_entropy" if classification else "mse"
    if language:
        num_outputs = lm.model_vocabulary(options, dataset)
        lm.check_monitor(cfg)
    else:
        num_outputs = (
            dataset.num_classes if classification else int(np.prod(dataset.y_train.shape[1:]) or 1)
        )
        checks.check_monitor(cfg, dataset, loss, own_dataset=own_dataset)
        options.setdefault("activation", mc.activation)
        options.setdefault("init", mc.init)
    if tc.precision != "fp32":
        options["dtype"] = PRECISIONS[tc.precision]
    given_variables = None
    builtin_model = model is None
    if model is None:
        try:
            model = create_model(
                mc.model, num_classes=num_outputs, input_shape=dataset.input_shape, **options
            )
        except (ValueError, TypeError) as err:
            raise _err(f"model.model {mc.model}: {err}") from err
        if tc.remat:
            model = rematerialized(model, f"model.model {mc.model}")
        apply_fn = model.apply
    else:
        if tc.remat:
            model = rematerialized(model, "your model")
        try:
            apply_fn, given_variables = as_apply(model)
        except TypeError as err:
            raise _err(str(err)) from err
    sample = jnp.zeros((1, *dataset.input_shape), jnp.int32 if language else jnp.float32)
    matrices = model_matrices(cfg.optimizer, model, given_variables, sample)
    tx, learning_rate = config_lib.build_optimizer(
        cfg.optimizer, total, matrices=matrices, decay_mask=lm.decay_mask if language else None
    )
    lr_fn = learning_rate if callable(learning_rate) else (lambda _: learning_rate)

    augment_fn = None
    if dc.augment:
        ops = tuple(dc.augment)
        try:
            augment(jax.random.PRNGKey(0), jnp.zeros((1, *dataset.input_shape)), ops)
        except ValueError as err:
            raise _err(f"data.augment: {err}") from err
        augment_fn = lambda key, x: augment(key, x, ops)  # noqa: E731

    replicated = NamedSharding(mesh, P())
    batch_spec = P(None, "data") if tc.accumulate > 1 else P("data")
    batch_sharding = NamedSharding(mesh, batch_spec)
    eval_sharding = NamedSharding(mesh, P("data"))

    def init_variables():
        if given_variables is not None:
            return dict(given_variables)
        key = jax.random.PRNGKey(tc.seed)
        return dict(model.init({"params": key, "dropout": key}, sample, train=False))

    def init_fn():
        variables = init_variables()
        params = variables.pop("params")
        scale = INITIAL_LOSS_SCALE if tc.precision == "fp16" else 1.0
        return create_state(params, tx.init(params), tc.seed, variables, loss_scale=scale)

    try:
        abstract = jax.eval_shape(init_fn)
    except (TypeError, ValueError) as err:  # the model's options, or the optimizer's init
        model_failed = _fails(init_variables)  # (e.g. Muon rejects these params)
        if model_failed and not builtin_model:
            raise  # your own model's init: its traceback is the help
        raise checks.init_error(cfg, err, model_failed=model_failed) from err
    # The safety net for arguments of a wrong type: both traced once, nothing compiled.
    checks.check_schedule(cfg, learning_rate)
    checks.check_optimizer(cfg, tx, abstract, obj_fn=tc.parallel != "pmap")
    state_sharding = state_shardings(abstract, tx, mesh, tc.strategy)
    abstract_state = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_sharding
    )

    device_data = None
    if (
        tc.parallel == "jit"
        and train_batches is None
        and not language
        and processes == 1
        and dataset.x_train.nbytes + dataset.y_train.nbytes <= DEVICE_DATA_BYTES
    ):
        device_data = jax.device_put({"x": dataset.x_train, "y": dataset.y_train}, replicated)

    spec = StepSpec(
        loss=loss,
        learning_rate_fn=lr_fn,
        accumulate=tc.accumulate,
        nonfinite=tc.nonfinite,
        loss_scaling=tc.precision == "fp16",
        augment=augment_fn,
    )

    def compiled_step(spec: StepSpec):
        step_fn = make_train_step(apply_fn, tx, spec)
        if device_data is None:
            return jax.jit(
                step_fn,
                in_shardings=(state_sharding, batch_sharding),
                out_shardings=(state_sharding, replicated),
                donate_argnums=0,
            )

        def gather_then_step(state, data, batch):  # rows gathered on device, same values
            rows = {"x": data["x"][batch["index"]], "y": data["y"][batch["index"]]}
            return step_fn(state, {**rows, "mask": batch["mask"]})

        jitted = jax.jit(
            gather_then_step,
            in_shardings=(state_sharding, replicated, batch_sharding),
            out_shardings=(state_sharding, replicated),
            donate_argnums=0,
        )
        return lambda state, batch: jitted(state, device_data, batch)

    eval_step = jax.jit(
        make_eval_step(
            apply_fn, loss=loss, num_classes=1 if language else dataset.num_classes or 1
        ),
        in_shardings=(state_sharding, eval_sharding),
    )
    eval_batch = max(data_size * processes, min(lm.EVAL_BATCH if language else EVAL_BATCH, n_train))
    eval_batch = math.ceil(eval_batch / (data_size * processes)) * data_size * processes

    def eval_batches(split: str) -> Iterator[dict]:
        if language:
            x, y = lm.eval_arrays(dataset, split)
        else:
            x, y = (
                (dataset.x_val, dataset.y_val)
                if split == "val"
                else (dataset.x_test, dataset.y_test)
            )
        if len(x) == 0:
            return iter(())
        it = BatchIterator(
            x,
            y,
            batch_size=min(eval_batch, math.ceil(len(x) / processes) * processes),
            seed=0,
            shuffle=False,
            process_index=jax.process_index(),
            process_count=processes,
        )
        return (next(it) for _ in range(it.steps_per_epoch))

    train_step, monitored_step = None, None
    pmap_adapter = None
    if tc.parallel == "pmap":
        pmap_adapter = PmapAdapter(mesh.devices.flatten(), state_sharding)
        pmap_apply = sync_batchnorm(model, apply_fn, _layered(model))
        train_step, monitored_step = (
            pmap_adapter.wrap(make_pmap_step(pmap_apply, tx, s, devices=pmap_adapter.devices))
            for s in (spec, spec.monitored())
        )
    else:
        train_step, monitored_step = compiled_step(spec), compiled_step(spec.monitored())

    return Setup(
        cfg=cfg,
        sources=sources,
        mesh=mesh,
        batch_sharding=batch_sharding,
        eval_sharding=eval_sharding,
        train_iter=train_iter,
        eval_batches=eval_batches,
        init_state=jax.jit(init_fn, out_shardings=state_sharding),
        abstract_state=abstract_state,
        next_batch=train_iter.next_indices if device_data is not None else train_iter.__next__,
        spec=spec,
        train_step=train_step,
        monitored_step=monitored_step,
        eval_step=eval_step,
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
        params_template=abstract.params,
        dataset=dataset,
        model=model,
        apply_fn=apply_fn,
        **(lm.throughput_fields(dataset, model, abstract.params, global_batch) if language else {}),
        **(
            {"replicate": pmap_adapter.replicate, "unreplicate": pmap_adapter.unreplicate}
            if pmap_adapter
            else {}
        ),
    )
