"""The columns of a scored file: the input's, an ``id`` when it has none, then the scores.

Every input column is kept as it is, so the output joins back to whatever the input held;
one whose name clashes with a scored column (a labelled file's gold ``stance``) is kept as
``input_<name>`` rather than overwritten. When the input has no ``id`` column and no
``id_column`` was named, ``id`` (the 1-based row number) comes first, so every row can be
referred to. ``detente score`` (both engines) and the demo's batch tab use this one
layout, so they write the same columns and types for the same file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from model.config import DetenteConfig
from model.errors import DataError
from serve.scored_rows import output_column_names

log = logging.getLogger("detente.score")


@dataclass
class Layout:
    """How input columns and scored columns make an output row."""

    input_schema: pa.Schema
    renamed: list[str]
    add_id: bool
    scored_schema: pa.Schema

    @property
    def schema(self) -> pa.Schema:
        fields = [pa.field("id", pa.int64())] if self.add_id else []
        fields += [f.with_name(name) for f, name in zip(self.input_schema, self.renamed)]
        return pa.schema(fields + list(self.scored_schema))

    def build(self, inputs: pa.Table, scored: dict[str, pa.Array], first_row: int) -> pa.Table:
        """The output table of rows ``first_row ...`` (0-based) from their parts."""
        inputs = inputs.cast(self.input_schema) if inputs.schema != self.input_schema else inputs
        arrays = list(inputs.columns)
        if self.add_id:
            ids = np.arange(first_row + 1, first_row + 1 + inputs.num_rows, dtype=np.int64)
            arrays.insert(0, pa.array(ids))
        arrays += [scored[f.name] for f in self.scored_schema]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def plan_layout(schema: pa.Schema, id_column: str | None, config: DetenteConfig) -> Layout:
    """Rename clashing input columns to ``input_<name>`` and decide whether to add ``id``."""
    outputs = output_column_names(config)
    if id_column is not None and id_column not in schema.names:
        raise DataError(
            f"the input has no id column {id_column!r}; its columns are {schema.names}"
        )
    taken = set(schema.names) | set(outputs)
    add_id = id_column is None and "id" not in schema.names
    if add_id:
        taken.add("id")
    renamed = []
    for name in schema.names:
        new = name
        if name in outputs:
            new = f"input_{name}"
            while new in taken:
                new = f"input_{new}"
            taken.add(new)
            log.warning("input column %r clashes with an output column: kept as %r", name, new)
        renamed.append(new)
    scored = pa.schema(
        [pa.field(name, pa.float32() if name.startswith("p_") or name == "sentiment_score"
                  else pa.string()) for name in outputs]
    )
    return Layout(schema, renamed, add_id, scored)
