"""All models, imported here so that ``Base.metadata`` knows every table."""

from matplat.db.models.discovery import CandidateLineage, DiscoveryRun
from matplat.db.models.graphs import CrystalGraph, GraphRecipe
from matplat.db.models.ingest import IngestRun
from matplat.db.models.jobs import Job, JobTask
from matplat.db.models.materials import DftProperty, Material, MaterialElement, Site, Structure
from matplat.db.models.mlmodels import (
    DatasetSplit,
    ModelAlias,
    ModelMetric,
    ModelVersion,
    Prediction,
    SplitMember,
    TrainingRun,
)
from matplat.db.models.provenance import MaterialFile
from matplat.db.models.stability import (
    HullBuild,
    HullDecomposition,
    HullSystem,
    MaterialHull,
    StabilityMetric,
)
from matplat.db.models.summaries import MaterialSummary

__all__ = [
    "CandidateLineage",
    "CrystalGraph",
    "DatasetSplit",
    "DftProperty",
    "DiscoveryRun",
    "GraphRecipe",
    "HullBuild",
    "HullDecomposition",
    "HullSystem",
    "IngestRun",
    "Job",
    "JobTask",
    "Material",
    "MaterialElement",
    "MaterialSummary",
    "MaterialFile",
    "MaterialHull",
    "ModelAlias",
    "ModelMetric",
    "ModelVersion",
    "Prediction",
    "Site",
    "SplitMember",
    "StabilityMetric",
    "Structure",
    "TrainingRun",
]

#: Tables users query directly (the SQL contract) and that ``platform status`` counts.
PUBLIC_TABLES = (
    "materials",
    "structures",
    "sites",
    "material_elements",
    "dft_properties",
    "material_files",
    "ingest_runs",
    "graph_recipes",
    "crystal_graphs",
    "dataset_splits",
    "model_versions",
    "model_aliases",
    "training_runs",
    "predictions",
    "model_metrics",
    "jobs",
    "hull_builds",
    "material_hulls",
    "hull_decompositions",
    "discovery_runs",
    "candidates",
)
