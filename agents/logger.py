"""TensorBoard logging through Stable-Baselines3's logger, with SB3's tag names.

Every learner (ours and SB3's) writes through one ``stable_baselines3.common.logger.Logger``
per run, x-axis = env steps. Tags follow SB3 (``rollout/ep_rew_mean``, ``train/loss``, ...);
environment metrics use ``env/``; consensus uses ``consensus/``. Roles other than the
recommender add a suffix (``rollout/ep_rew_mean_provider``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import (
    CSVOutputFormat,
    HumanOutputFormat,
    Logger,
    TensorBoardOutputFormat,
)

PROGRESS_NAME = "progress.csv"

EP_REW_MEAN = "rollout/ep_rew_mean"
EP_LEN_MEAN = "rollout/ep_len_mean"
EXPLORATION_RATE = "rollout/exploration_rate"
TRAIN_LOSS = "train/loss"
EVAL_MEAN_REWARD = "eval/mean_reward"
EVAL_MEAN_EP_LENGTH = "eval/mean_ep_length"
TIME_FPS = "time/fps"
ENV_PREFIX = "env/"
CONSENSUS_PREFIX = "consensus/"


def role_tag(tag: str, role: str) -> str:
    """SB3 tag for a role: unchanged for recommenders, ``<tag>_<role>`` otherwise."""
    return tag if role == "recommender" else f"{tag}_{role}"


def run_dir_name(scenario: str, algo: str, seed: int, unix_time: int | None = None) -> str:
    """``<scenario>__<algo>__<seed>__<unix_time>`` (cleanrl's naming), filesystem-safe."""
    t = int(time.time()) if unix_time is None else int(unix_time)
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "-", f"{scenario}__{algo}__{seed}__{t}")
    return safe


def make_run_dir(root: str | Path, scenario: str, algo: str, seed: int) -> Path:
    """Create and return a fresh run directory under ``root``."""
    root = Path(root)
    t = int(time.time())
    while True:
        path = root / run_dir_name(scenario, algo, seed, t)
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            t += 1


class ResumableCSV(CSVOutputFormat):
    """SB3's CSV output, but an existing ``progress.csv`` keeps its rows: a resumed run
    appends to it (SB3's own format reopens the file with ``"w+"`` and loses the history)."""

    def __init__(self, filename: str) -> None:
        if os.path.isfile(filename) and os.path.getsize(filename) > 0:
            self.file = open(filename, "r+")  # noqa: SIM115 - closed by close()
            header = self.file.readline().rstrip("\n")
            self.keys = header.split(",") if header else []
            self.file.seek(0, os.SEEK_END)
            self.separator, self.quotechar = ",", '"'
        else:
            super().__init__(filename)


def make_logger(run_dir: str | Path, *, stdout: bool = False, csv: bool = True) -> Logger:
    """SB3 logger writing TensorBoard events (and ``progress.csv``) into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    formats: list[Any] = [TensorBoardOutputFormat(str(run_dir))]
    if csv:
        formats.append(ResumableCSV(str(run_dir / PROGRESS_NAME)))
    if stdout:
        formats.append(HumanOutputFormat(sys.stdout))
    return Logger(folder=str(run_dir), output_formats=formats)


def truncate_progress(run_dir: str | Path, steps: int) -> int:
    """Drop the rows of ``run_dir/progress.csv`` logged after ``steps`` env steps (a run
    killed after its last checkpoint logged them; the resumed run logs them again).

    Returns:
        The number of rows dropped.
    """
    path = Path(run_dir) / PROGRESS_NAME
    if not path.is_file():
        return 0
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "time/total_timesteps" not in rows[0]:
        return 0
    col = rows[0].index("time/total_timesteps")
    keep = [rows[0]] + [r for r in rows[1:] if col >= len(r) or r[col] == ""
                        or float(r[col]) <= steps]
    dropped = len(rows) - len(keep)
    if dropped:
        with path.open("w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(keep)
    return dropped


def save_config(run_dir: str | Path, config: dict[str, Any], logger: Logger | None = None) -> Path:
    """Write the resolved config as ``config.json`` beside the event files and, if a logger
    is given, as TensorBoard text (``config``)."""
    path = Path(run_dir) / "config.json"
    text = json.dumps(config, indent=2, sort_keys=True, default=str)
    path.write_text(text)
    if logger is not None:
        for fmt in logger.output_formats:
            writer = getattr(fmt, "writer", None)  # TensorBoardOutputFormat's SummaryWriter
            if writer is not None:
                writer.add_text("config", f"```\n{text}\n```", 0)
                writer.flush()
    return path
