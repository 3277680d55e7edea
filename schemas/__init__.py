"""The JSON Schemas of the events and of the task definitions, and the shipped task definitions:
installed as the package data `darkroom.schemas` (`darkroom schemas --write` regenerates the schemas)."""
