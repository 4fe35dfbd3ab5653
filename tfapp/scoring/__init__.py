"""Scoring workflows: records in, an export's outputs out (tfapp.predict's record
handling) and the Apache Beam pipelines that score at scale (the [beam] extra)."""
