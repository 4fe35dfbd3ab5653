"""tfapp: fine-tune one shared keras-hub BERT backbone for domain tasks and export for TF Serving.

Layers, bottom up: core/ (config, data, backbone, distribute, run dirs, the Task contract),
the workflows training/, serving/, pretraining/ and compression/, the task packages in
the top-level `tasks` package, and the commands: the modules directly in this package
(`python -m tfapp.train`, `tfapp.evaluate`, ...)."""
import os

# keras-hub must run on TensorFlow: the exported graph tokenises with tensorflow-text ops.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Keep TF's C++ start-up chatter (CPU feature notes, "failed call to cuInit" on machines
# without GPUs) out of the user's progress output; Python exceptions still surface.
# Set TF_CPP_MIN_LOG_LEVEL=0 to see it all when debugging devices.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
