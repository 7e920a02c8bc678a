"""What a result says about the model that produced it (after MTEB's ModelMeta).

A result file's `model` object is `ModelCard(...).model_dump()`; the `model`
part of result.schema.json mirrors these fields, and a test keeps them in step.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ModelCard(BaseModel):
    # A typo'd field would otherwise vanish silently from every result file.
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Leaderboard row name; results are grouped by it.")
    source: str = Field(min_length=1, description="Where the model comes from: 'polymodal', 'huggingface', ...")
    revision: str | None = Field(default=None, description="Commit or tag of external weights.")
    parameters: int = Field(ge=0, description="Number of trainable parameters.")
    modalities: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, description="Modalities the model embeds."
    )
    license: str | None = None
    training_data: str | None = Field(default=None, description="What it was trained on, e.g. a dataset id and split.")
    config: dict[str, Any] = Field(default_factory=dict, description="Hyperparameters needed to rebuild it.")

    @field_validator("modalities")
    @classmethod
    def _distinct(cls, modalities: list[str]) -> list[str]:
        # The schema says uniqueItems; a card must not dump into a rejected result.
        if len(set(modalities)) != len(modalities):
            raise ValueError("modalities must be distinct")
        return modalities
