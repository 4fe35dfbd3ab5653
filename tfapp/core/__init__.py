"""The framework core: typed config, errors, logging, data readers and tf.data input, the
shared backbone and its in-graph packer, distribution strategy and precision, run
directories and the export layout, and the Task contract with its registry.

Imports nothing above it (no workflow, task or command)."""
