"""Results back where the team looks: a run's verdicts as tags on each audited model version,
and the run itself as one MLflow run (verdict counts as metrics, the HTML page and the run's
Parquet tables as artifacts).

Publishing reads the written report, so it never holds results the Parquet report lacks, and
it never fails a run: each problem is one warning line in `Published.warnings`.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.manifest.case import MlflowPublish
from audit.mlflow.client import describe, make_client, quick_retries
from audit.reports import ReportError, Store, connect
from audit.reports.columns import TABLES
from audit.reports.html import write_html
from audit.util.text import one_line

__all__ = ["TAGS", "Published", "publish_mlflow"]

#: the model-version tags a run sets
TAGS = ("flatline.verdict", "flatline.primary_fault", "flatline.confidence",
        "flatline.run_id", "flatline.report")
PAGE = "report.html"


@dataclass
class Published:
    """What was published: the MLflow run, the versions tagged, and what failed."""

    experiment: str
    mlflow_run_id: str | None = None
    tagged: list[str] = field(default_factory=list)  # "<model>/<version>"
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        run = f"MLflow run {self.mlflow_run_id}" if self.mlflow_run_id else "no MLflow run"
        return (f"published: {run} in experiment {self.experiment!r}; "
                f"tagged {len(self.tagged)} model version{'' if len(self.tagged) == 1 else 's'}")


@dataclass(frozen=True)
class _Case:
    name: str
    status: str
    verdict: str
    primary_fault: str | None
    confidence: float | None
    source: dict[str, Any] | None


def publish_mlflow(output: str, run_id: str, settings: MlflowPublish) -> Published:
    """Log the run `run_id` of the report at `output` as an MLflow run and tag each registry
    case's model version with its result. The tracking URI is `settings.uri`, else the
    registry the cases came from."""
    result = Published(settings.experiment)
    try:
        cases = _cases(output, run_id)
    except (ReportError, OSError) as exc:
        result.warnings.append(f"publish: cannot read run {run_id} at {output}: "
                               f"{one_line(exc, 200)}")
        return result
    uri = settings.uri or next((c.source["uri"] for c in cases if _registry_case(c)), None)
    if uri is None:
        result.warnings.append("publish: no MLflow tracking URI; set `publish.mlflow.uri`, "
                               "MLFLOW_TRACKING_URI, or audit a registry")
        return result

    report = f"{output} (run {run_id})"
    with quick_retries():
        try:
            result.mlflow_run_id = _log_run(make_client(uri), settings.experiment, output,
                                            run_id, cases, result.warnings)
            report = f"runs:/{result.mlflow_run_id}/{PAGE}"
        except Exception as exc:
            result.warnings.append(f"publish: cannot log the run to {uri} "
                                   f"(experiment {settings.experiment!r}): {describe(exc)}")
        clients: dict[str, Any] = {}
        for case in cases:
            if not _registry_case(case):
                continue
            source = case.source or {}
            where = f"{source['model_name']}/{source['version']}"
            try:
                client = clients.get(source["uri"]) or make_client(source["uri"])
                clients[source["uri"]] = client
                for key, value in _tags(case, run_id, report).items():
                    client.set_model_version_tag(source["model_name"], source["version"],
                                                 key, value)
                result.tagged.append(where)
            except Exception as exc:
                result.warnings.append(f"publish: cannot tag model version {where} at "
                                       f"{source['uri']}: {describe(exc)}")
    return result


def _registry_case(case: _Case) -> bool:
    """A case of an MLflow model version that was found (not an unknown alias or model)."""
    source = case.source or {}
    return source.get("registry") == "mlflow" and str(source.get("version", "")).isdigit()


def _cases(output: str, run_id: str) -> list[_Case]:
    con = connect(output, runs=[run_id])
    rows = con.execute(
        "select c.name, c.status, c.verdict, c.primary_fault, c.source, "
        "(select max(f.confidence) from findings f where f.case_id = c.case_id and "
        " f.run_id = c.run_id and f.fault = c.primary_fault) "
        "from cases c where c.run_id = ? order by c.name", [run_id]).fetchall()
    if not rows:
        raise ReportError(f"run {run_id} has no cases")
    return [_Case(name, status, verdict, fault,
                  None if conf is None or not math.isfinite(conf) else float(conf),
                  json.loads(source) if source else None)
            for name, status, verdict, fault, source, conf in rows]


def _tags(case: _Case, run_id: str, report: str) -> dict[str, str]:
    return {
        "flatline.verdict": case.verdict,
        "flatline.primary_fault": case.primary_fault or "none",
        "flatline.confidence": "" if case.confidence is None else f"{case.confidence:.2f}",
        "flatline.run_id": run_id,
        "flatline.report": report,
    }


def _log_run(client: Any, experiment: str, output: str, run_id: str, cases: list[_Case],
             warnings: list[str]) -> str:
    """One MLflow run for the audit run: counts as metrics, page and tables as artifacts.
    Raises when the run cannot be created; a missing artifact is a warning."""
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, run_name=run_id,
                            tags={"flatline.run_id": run_id, "flatline.output": output})
    mlflow_run = run.info.run_id
    counts: dict[str, float] = {"cases": float(len(cases))}
    for case in cases:
        for key in (f"verdict.{case.verdict}", f"status.{case.status}"):
            counts[key] = counts.get(key, 0.0) + 1
    for key, value in counts.items():
        client.log_metric(mlflow_run, key, value)
    with tempfile.TemporaryDirectory(prefix="flatline-publish-") as tmp:
        try:

            write_html(output, run_id, Path(tmp) / PAGE)
            client.log_artifact(mlflow_run, str(Path(tmp) / PAGE))
        except Exception as exc:
            warnings.append(f"publish: the HTML page was not attached: {one_line(exc, 200)}")
        try:
            folder = _copy_tables(output, run_id, Path(tmp) / "report")
            client.log_artifacts(mlflow_run, str(folder), "report")
        except Exception as exc:
            warnings.append(f"publish: the Parquet tables were not attached: "
                            f"{one_line(exc, 200)}")
    client.set_terminated(mlflow_run, "FINISHED")
    return mlflow_run


def _copy_tables(output: str, run_id: str, target: Path) -> Path:
    """The run's Parquet files, in the report's layout, copied to a local folder."""
    store = Store(output)
    for table in TABLES:
        for path in store.files(table, run_id):
            local = target / table / f"run_id={run_id}" / Path(path).name
            local.parent.mkdir(parents=True, exist_ok=True)
            with store.fs.open_input_stream(path) as src, local.open("wb") as dst:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)
    return target
