"""Problem / Trajectory records, readers for every input form, and PRM-format converters.

Readers accept a .jsonl / .json / .parquet file, a `save_to_disk` directory, a directory of data
files, or a hub dataset name. Bad input raises DataError naming file, line (1-based for jsonl,
0-based record index otherwise) and field, so the CLI can print one line and exit 2.

    records      Problem, Trajectory, Where, split_steps
    validation   field checks that name file / line / field
    formats      rows of one .jsonl / .json / .parquet file
    readers      iter_rows / read_rows over files, directories, saved datasets, the hub;
                 read_problems, read_trajectories, read_records
    prm_formats  TRL PRM records and Math-Shepherd strings <-> Trajectory
"""

from reasoner.data.formats import DATA_SUFFIXES
from reasoner.data.prm_formats import (
    math_shepherd_to_trl_prm, parse_math_shepherd, prompt_id, trajectory_to_trl_prm, trl_prm_to_trajectory,
)
from reasoner.data.readers import iter_rows, read_problems, read_records, read_rows, read_trajectories
from reasoner.data.records import Problem, Trajectory, Where, split_steps
from reasoner.utils.io import append_jsonl, read_jsonl_tolerant, write_json_atomic, write_jsonl_atomic

_prompt_id = prompt_id  # its name when data was one module

__all__ = [
    "Where", "Problem", "Trajectory", "split_steps", "read_rows", "iter_rows", "read_problems",
    "read_trajectories", "read_records", "write_jsonl_atomic", "write_json_atomic", "append_jsonl",
    "read_jsonl_tolerant", "trajectory_to_trl_prm", "trl_prm_to_trajectory", "parse_math_shepherd",
    "math_shepherd_to_trl_prm",
]
