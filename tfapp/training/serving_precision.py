"""The model a run serves: its trained weights in the precision of the export
(export.precision), so that what is evaluated is what is served."""
from __future__ import annotations

import keras

from tfapp.core.backbone import policy_clone
from tfapp.core.distribute import export_precision
from tfapp.core.log import say


def policy_copy(task, loaded, model, policy_name: str, build=None):
    """The task's model (or `build(loaded)`'s, see Lever.model_structure) rebuilt under
    another dtype policy, with `model`'s weights (mixed policies keep float32 variables,
    so a float32 copy loses nothing)."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy_name)
    try:
        copy = (build or task.build_model)(policy_clone(loaded, policy_name))
        copy.set_weights(model.get_weights())
    finally:
        keras.mixed_precision.set_global_policy(policy)
    return copy


def model_to_serve(task, loaded, model, trained: str, export_cfg, build=None):
    """(model, precision): `model` in the precision export.precision chooses for this
    machine (logged with the reason); `trained` is the policy `model` was built under."""
    precision, why = export_precision(export_cfg, trained)
    say(f"export precision {precision}: {why}")
    if precision == trained:
        return model, precision
    return policy_copy(task, loaded, model, precision, build), precision
